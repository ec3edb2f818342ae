"""easy-VQA data: loading from the installed package, tokenizer, vocabulary, splits and the image cache."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.data import easy_vqa as data_module
from i2m2.data.easy_vqa import (
    GROUP_NAMES,
    MAX_QUESTION_LENGTH,
    NUM_CLASSES,
    PAD,
    UNK,
    EasyVQADataset,
    Vocabulary,
    answer_groups,
    answer_names,
    decoded_images,
    load_easy_vqa,
    tokenize,
    vocabulary,
)
from i2m2.data.multimodal_dataset import DataSplits


@pytest.fixture(scope="module")
def cache(easy_vqa_images: Path) -> Path:
    return easy_vqa_images


@pytest.fixture(scope="module")
def small(cache: Path) -> DataSplits:
    return load_easy_vqa(seed=0, limit=600, cache=cache)


def test_tokenizer_and_vocabulary_are_deterministic():
    assert tokenize("What color is the shape?") == ["what", "color", "is", "the", "shape"]
    vocab = Vocabulary.from_questions(["is there a red shape?", "what is the red shape?"])
    assert vocab.words == ["<pad>", "<unk>", "a", "is", "red", "shape", "the", "there", "what"]
    assert Vocabulary.from_questions(["what is the red shape?", "is there a red shape?"]).words == vocab.words
    ids = vocab.encode(["is there a blue shape?", "red " * 20])
    assert ids.dtype == torch.int64 and ids.shape == (2, MAX_QUESTION_LENGTH)
    assert ids[0, :5].tolist() == [3, 7, 2, UNK, 5]  # "blue" is not a training word
    assert (ids[0, 5:] == PAD).all()
    assert (ids[1] == vocab.index["red"]).all()  # longer questions are cut to the fixed length


def test_vocabulary_comes_from_training_questions_only():
    import easy_vqa

    train_words = {w for q in easy_vqa.get_train_questions()[0] for w in tokenize(q)}
    assert set(vocabulary().words[2:]) == train_words
    assert vocabulary().words == vocabulary().words


def test_answer_groups():
    assert answer_groups(["yes", "no", "circle", "triangle", "rectangle", "teal"]) == [0, 0, 1, 1, 1, 2]
    assert len(answer_names()) == NUM_CLASSES
    assert GROUP_NAMES == ("yes/no", "shape", "color")


def test_splits_shapes_dtypes_and_groups(small: DataSplits):
    assert small.num_classes == NUM_CLASSES
    assert len(small.train) + len(small.val) == 600 and len(small.test) == 600
    inputs, label = small.train[0]
    assert set(inputs) == {"image", "question"}
    assert inputs["image"].dtype == torch.float32 and inputs["image"].shape == (3, 64, 64)
    assert inputs["image"].min() >= 0.0 and inputs["image"].max() <= 1.0 and inputs["image"].max() > 0.5
    assert inputs["question"].dtype == torch.int64 and inputs["question"].shape == (MAX_QUESTION_LENGTH,)
    assert label.dtype == torch.int64 and 0 <= int(label) < NUM_CLASSES
    names = answer_names()
    for split in (small.train, small.val, small.test):
        assert isinstance(split, EasyVQADataset) and split.modalities == ("image", "question")
        assert split.groups is not None
        expected = answer_groups([names[int(y)] for y in split.labels])
        assert split.groups.tolist() == expected
    # The images are shared, not copied per question.
    assert small.train.images.data_ptr() == small.val.images.data_ptr()


def test_validation_holds_out_whole_training_images(small: DataSplits):
    train_images = set(small.train.image_index.tolist())
    val_images = set(small.val.image_index.tolist())
    assert val_images and not train_images & val_images
    test_images = small.test.images
    assert test_images.data_ptr() != small.train.images.data_ptr()  # test images are the test PNGs


@pytest.mark.slow
def test_split_depends_on_seed_and_is_reproducible(cache: Path):
    a, b = load_easy_vqa(seed=0, limit=400, cache=cache), load_easy_vqa(seed=0, limit=400, cache=cache)
    c = load_easy_vqa(seed=1, limit=400, cache=cache)
    assert torch.equal(a.val.image_index, b.val.image_index) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.train.labels, c.train.labels)


@pytest.mark.slow
def test_image_matches_its_png(cache: Path):
    import easy_vqa
    from PIL import Image

    texts, _, image_ids = easy_vqa.get_test_questions()
    test = load_easy_vqa(seed=0, cache=cache).test
    index = 123
    pixels = np.array(Image.open(easy_vqa.get_test_image_paths()[image_ids[index]]).convert("RGB"))
    inputs, _ = test[index]
    assert torch.allclose(inputs["image"], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    words = len(tokenize(texts[index]))
    assert inputs["question"][:words].ne(PAD).all() and inputs["question"][words:].eq(PAD).all()


@pytest.mark.slow
def test_cache_is_written_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("I2M2_CACHE", str(tmp_path))
    first = decoded_images()
    files = list((tmp_path / "easy_vqa").glob("*.npz"))
    assert len(files) == 1 and "1.0" in files[0].name  # keyed by the package version
    assert not [p for p in (tmp_path / "easy_vqa").iterdir() if p.suffix == ".tmp"]
    assert first["train"][1].shape == (4000, 3, 64, 64) and first["train"][1].dtype == torch.uint8
    assert first["test"][1].shape == (1000, 3, 64, 64)

    def no_decoding(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although the cache exists")

    monkeypatch.setattr(data_module, "_read_png", no_decoding)
    second = decoded_images()
    assert torch.equal(first["test"][1], second["test"][1])
    assert np.array_equal(first["train"][0], second["train"][0])


@pytest.mark.slow
def test_damaged_cache_is_rebuilt(tmp_path: Path):
    decoded_images(tmp_path)
    (path,) = tmp_path.glob("*.npz")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])
    with pytest.warns(UserWarning, match="decoding the PNGs again"):
        images = decoded_images(tmp_path)
    assert images["test"][1].shape == (1000, 3, 64, 64)
    assert path.stat().st_size == len(good)


def test_unwritable_cache_still_loads(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = decoded_images(blocker / "cache")
    assert images["train"][1].shape[0] == 4000
    assert any("could not cache" in str(w.message) for w in caught)


def test_env_var_names_the_cache_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("I2M2_CACHE", str(tmp_path))
    assert data_module.cache_dir() == tmp_path / "easy_vqa"
    monkeypatch.delenv("I2M2_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_module.cache_dir() == tmp_path / "xdg" / "i2m2" / "easy_vqa"
    assert os.environ["XDG_CACHE_HOME"].endswith("xdg")
