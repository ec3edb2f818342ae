"""The AV-MNIST loader on small files in exactly MultiBench's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.data.avmnist import load_avmnist
from i2m2.errors import DataError
from tests.helpers.avmnist import write_avmnist


def test_shapes_scaling_and_the_fixed_split(tmp_path):
    arrays = write_avmnist(tmp_path, n_train=24, n_test=8)
    splits = load_avmnist(tmp_path)
    assert splits.num_classes == 10
    assert splits.train.modalities == ("image", "audio")
    # 5,000 of 60,000 -> 2 of 24 rows, taken from the end of the training files
    assert (len(splits.train), len(splits.val), len(splits.test)) == (22, 2, 8)
    image = torch.from_numpy(arrays["image/train"].reshape(24, 1, 28, 28)) / 255
    audio = torch.from_numpy(arrays["audio/train"].reshape(24, 1, 112, 112)) / 255
    labels = torch.from_numpy(arrays["labels/train"])
    assert splits.train.inputs["image"].dtype == torch.float32
    assert torch.allclose(splits.train.inputs["image"], image[:22])
    assert torch.allclose(splits.val.inputs["image"], image[22:])
    assert torch.allclose(splits.train.inputs["audio"], audio[:22])
    assert torch.allclose(splits.val.inputs["audio"], audio[22:])
    assert torch.equal(splits.train.labels, labels[:22]) and torch.equal(splits.val.labels, labels[22:])
    assert torch.equal(splits.test.labels, torch.from_numpy(arrays["labels/test"]))
    assert splits.test.inputs["audio"].shape == (8, 1, 112, 112)


@pytest.mark.parametrize(("n_train", "n_val"), [(120, 10), (12, 1), (2, 1)])
def test_validation_keeps_the_multibench_proportion(tmp_path, n_train, n_val):
    write_avmnist(tmp_path, n_train=n_train, n_test=3)
    splits = load_avmnist(tmp_path)
    assert (len(splits.train), len(splits.val)) == (n_train - n_val, n_val)


def test_2d_images_and_uint8_audio_load_the_same(tmp_path):
    flat = write_avmnist(tmp_path / "flat", flat_images=True, audio_dtype="float64", seed=3)
    square = write_avmnist(tmp_path / "square", flat_images=False, audio_dtype="uint8", seed=3)
    assert np.array_equal(flat["image/train"].reshape(-1, 28, 28), square["image/train"])
    a, b = load_avmnist(tmp_path / "flat"), load_avmnist(tmp_path / "square")
    assert torch.equal(a.train.inputs["image"], b.train.inputs["image"])
    assert torch.allclose(a.test.inputs["audio"], b.test.inputs["audio"])


def _corrupt(path: Path) -> None:
    path.write_bytes(b"definitely not an npy file")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1000])


def _object_array(path: Path) -> None:
    np.save(path, np.array([{"a": 1}] * 24, dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
    ("target", "damage", "message"),
    [
        ("image/train_data.npy", lambda p: p.unlink(), "no such file"),
        ("audio/test_data.npy", lambda p: p.unlink(), "no such file"),
        ("test_labels.npy", lambda p: p.unlink(), "no such file"),
        (
            "image/train_data.npy",
            lambda p: np.save(p, np.zeros((24, 27, 27), np.float32)),
            "got shape (24, 27, 27)",
        ),
        ("audio/train_data.npy", lambda p: np.save(p, np.zeros((24, 112, 100), np.uint8)), "got shape"),
        ("image/test_data.npy", lambda p: np.save(p, np.full((8, 784), "x")), "numeric"),
        ("audio/test_data.npy", lambda p: np.save(p, np.zeros((8, 112, 112), np.complex64)), "numeric"),
        ("audio/train_data.npy", lambda p: np.save(p, np.full((24, 112, 112), np.nan, np.float32)), "NaN"),
        ("image/train_data.npy", lambda p: np.save(p, np.zeros((23, 784), np.float32)), "disagree"),
        ("train_labels.npy", lambda p: np.save(p, np.full(24, 10)), "values 10..10"),
        ("train_labels.npy", lambda p: np.save(p, np.full(24, -1)), "values -1..-1"),
        ("test_labels.npy", lambda p: np.save(p, np.full(8, 2.5)), "non-integer"),
        ("test_labels.npy", lambda p: np.save(p, np.zeros((8, 2), np.int64)), "got shape (8, 2)"),
        ("audio/train_data.npy", _corrupt, "not a readable .npy"),
        ("audio/train_data.npy", _truncate, "audio/train_data.npy"),
        ("train_labels.npy", _object_array, "not a readable .npy"),
    ],
)
def test_bad_files_name_the_file(tmp_path, target, damage, message):
    write_avmnist(tmp_path)
    damage(tmp_path / target)
    with pytest.raises(DataError) as info:
        load_avmnist(tmp_path)
    assert str(tmp_path / target) in str(info.value)
    assert message in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_avmnist(tmp_path / "nowhere")


def test_float_labels_with_integer_values_are_accepted(tmp_path):
    arrays = write_avmnist(tmp_path)
    np.save(tmp_path / "train_labels.npy", arrays["labels/train"].astype(np.float64))
    splits = load_avmnist(tmp_path)
    assert splits.train.labels.dtype == torch.int64
    assert torch.equal(splits.train.labels, torch.from_numpy(arrays["labels/train"][:22]))
