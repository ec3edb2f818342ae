"""AV-MNIST fixtures in the real on-disk formats: MultiBench's npy files, MNIST IDX files, FSDD wavs."""

from __future__ import annotations

import gzip
import wave
from pathlib import Path

import numpy as np


def write_avmnist(
    root: Path,
    n_train: int = 24,
    n_test: int = 8,
    flat_images: bool = True,
    audio_dtype: str = "float32",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """MultiBench's six files: float images 0..255, spectrograms 0..255, int labels 0..9."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        image = rng.uniform(0, 255, (n, 784) if flat_images else (n, 28, 28)).astype(np.float32)
        audio = rng.integers(0, 256, (n, 112, 112)).astype(audio_dtype)
        labels = rng.integers(0, 10, n).astype(np.int64)
        (root / "image").mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        np.save(root / "image" / f"{split}_data.npy", image)
        np.save(root / "audio" / f"{split}_data.npy", audio)
        np.save(root / f"{split}_labels.npy", labels)
        arrays |= {f"image/{split}": image, f"audio/{split}": audio, f"labels/{split}": labels}
    return arrays


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    """Samples in [-1, 1] (frames x channels for several channels) as a PCM wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = 2 ** (8 * width - 1) - 1
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    data = (samples * 127 + 128).astype(dtype) if width == 1 else (samples * scale).astype(f"<i{width}")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return path


def write_fsdd(
    folder: Path, takes: tuple[int, ...] = (0, 1, 5, 6), speakers: tuple[str, ...] = ("ann", "bob")
) -> Path:
    """FSDD-named recordings: a different tone per digit, a different length per take."""
    for digit in range(10):
        for s, speaker in enumerate(speakers):
            for take in takes:
                t = np.arange(1200 + 300 * take + 100 * s) / 8000
                tone = 0.5 * np.sin(2 * np.pi * (300 + 150 * digit) * t)
                write_wav(folder / "recordings" / f"{digit}_{speaker}_{take}.wav", tone)
    return folder


def write_idx(
    folder: Path, n_train: int = 40, n_test: int = 20, gz: bool = True, seed: int = 0
) -> dict[str, np.ndarray]:
    """The four MNIST IDX files (big-endian header, unsigned bytes), labels cycling through 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        files = {
            f"{prefix}-images-idx3-ubyte": b"\x00\x00\x08\x03"
            + b"".join(int(d).to_bytes(4, "big") for d in (n, 28, 28))
            + images.tobytes(),
            f"{prefix}-labels-idx1-ubyte": b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + labels.tobytes(),
        }
        for name, raw in files.items():
            (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
        arrays[prefix] = images
        arrays[prefix + "_labels"] = labels
    return arrays
