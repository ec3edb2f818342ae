"""One fastMRI single-coil knee HDF5 volume: check its layout once, then read preprocessed slices lazily.

Layout (fastMRI ``singlecoil_*/fileNNNNNNN.h5``)::

    kspace               (slices, 640, W) complex64   emulated single-coil, centred k-space
    reconstruction_rss   (slices, 320, 320) float32   root-sum-of-squares of the multi-coil data
    reconstruction_esc   (slices, 320, 320) float32   magnitude of the emulated single coil
    attrs                acquisition, max, norm, patient_id, ...

Modalities per slice: ``magnitude`` and ``phase`` of the k-space image (:mod:`i2m2.data.kspace`), and
``rss``, the RSS image centre-cropped to ``crop`` and divided by its 99th percentile like the magnitude.
Test-time noise enters the k-space only, so ``rss`` (stored as an image) stays clean.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from i2m2.data.kspace import add_kspace_noise, center_crop, scale_magnitude, slice_modalities
from i2m2.errors import DataError

MODALITIES = ("magnitude", "phase", "rss")
RSS_KEY = "reconstruction_rss"


@dataclass(frozen=True)
class Preprocessing:
    """Settings that turn k-space into modality images; all of them key the on-disk cache.

    Args:
        crop: side of the centre crop (320 in the paper).
        max_width: the widest k-space accepted; wider volumes are a data error (the authors keep <= 400).
        zero_fill: zero-pad every k-space to ``max_width`` before the FFT (the authors' choice), so all
            images share one grid; if False the image keeps the volume's own width.
        snr_db: test-time complex Gaussian k-space noise at this SNR (None: no noise), relative to the
            volume's mean k-space power: one noise level per volume (:func:`volume_kspace_power`).
        noise_seed: seeds the noise; each slice draws from ``(noise_seed, crc32(volume name), slice)``,
            so the noise does not depend on the order slices are read in or on the worker reading them.
    """

    crop: int = 320
    max_width: int = 400
    zero_fill: bool = True
    snr_db: float | None = None
    noise_seed: int = 0

    def settings(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Volume:
    """A checked volume: its file, name (``file1000001``) and number of slices."""

    path: Path
    name: str
    num_slices: int


def open_volume(path: Path, prep: Preprocessing, modalities: Sequence[str] = MODALITIES) -> Volume:
    """Check a volume's layout against ``prep`` (headers only, no slice data is read).

    Raises:
        DataError: the file is unreadable, has no ``kspace``, a non-complex or non-3-D k-space, a width
            beyond ``prep.max_width``, an image smaller than the crop, or (if ``rss`` is wanted) no
            matching ``reconstruction_rss``; the message names the file and what was expected.
    """
    try:
        with h5py.File(path, "r") as f:
            if "kspace" not in f:
                raise DataError(f"{path}: no 'kspace' dataset (expected fastMRI single-coil layout)")
            kspace = f["kspace"]
            if kspace.ndim != 3 or not np.issubdtype(kspace.dtype, np.complexfloating):
                raise DataError(
                    f"{path}: 'kspace' must be complex (slices, height, width), "
                    f"got {kspace.dtype} {kspace.shape}"
                )
            slices, height, width = kspace.shape
            if width > prep.max_width:
                raise DataError(f"{path}: k-space width {width} exceeds the maximum {prep.max_width}")
            image_width = prep.max_width if prep.zero_fill else width
            if prep.crop > min(height, image_width):
                raise DataError(f"{path}: {_crop_too_large(prep, height, width)}")
            if "rss" in modalities:
                _check_rss(path, f, slices, prep.crop)
    except OSError as err:
        raise DataError(f"{path}: cannot read as HDF5 ({err})") from err
    return Volume(Path(path), Path(path).stem, slices)


def _crop_too_large(prep: Preprocessing, height: int, width: int) -> str:
    """Why the crop does not fit, in the file's own sizes: its k-space, and the image it gives."""
    image_width = prep.max_width if prep.zero_fill else width
    image = f"an image of {height}x{image_width}"
    if prep.zero_fill and image_width != width:
        image += f" once its width is zero-filled to --max-width {prep.max_width}"
    return (
        f"crop {prep.crop} is larger than the image: the k-space is {height}x{width} (readout x phase "
        f"encoding), {image}; the crop can be at most {min(height, image_width)}"
    )


def _check_rss(path: Path, f: h5py.File, slices: int, crop: int) -> None:
    if RSS_KEY not in f:
        raise DataError(f"{path}: no '{RSS_KEY}' dataset (needed for the rss modality)")
    shape = f[RSS_KEY].shape
    if len(shape) != 3 or shape[0] != slices or crop > min(shape[1:]):
        raise DataError(
            f"{path}: '{RSS_KEY}' must be ({slices}, >={crop}, >={crop}) for crop {crop}, got {shape}"
        )


def read_slices(
    volume: Volume, indices: Sequence[int], prep: Preprocessing, modalities: Sequence[str]
) -> np.ndarray:
    """``(len(indices), len(modalities), crop, crop)`` float32 images of the given slices of a volume."""
    out = np.empty((len(indices), len(modalities), prep.crop, prep.crop), dtype=np.float32)
    with h5py.File(volume.path, "r") as f:
        for row, index in enumerate(indices):
            images = {}
            if "magnitude" in modalities or "phase" in modalities:
                kspace = np.asarray(f["kspace"][index])
                if prep.snr_db is not None:
                    seed = [prep.noise_seed, zlib.crc32(volume.name.encode()), int(index)]
                    rng = np.random.default_rng(seed)
                    kspace = add_kspace_noise(kspace, prep.snr_db, rng, volume_kspace_power(volume.path))
                zero_fill = prep.max_width if prep.zero_fill else None
                images["magnitude"], images["phase"] = slice_modalities(kspace, prep.crop, zero_fill)
            if "rss" in modalities:
                images["rss"] = scale_magnitude(center_crop(np.asarray(f[RSS_KEY][index]), prep.crop))
            for channel, modality in enumerate(modalities):
                out[row, channel] = images[modality]
    return out


def volume_kspace_power(path: Path) -> float:
    """``mean |k|^2`` over every slice of a volume's k-space: the signal power test-time noise is set from.

    A scanner's thermal noise is one level for the whole acquisition, so the noise sigma is the volume's,
    not each slice's (a per-slice sigma would follow each slice's signal). Read once per file and process
    (keyed by path, size and modification time), one slice at a time.
    """
    stat = Path(path).stat()
    return _volume_kspace_power(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _volume_kspace_power(path: str, size: int, mtime_ns: int) -> float:
    total, count = 0.0, 0
    with h5py.File(path, "r") as f:
        kspace = f["kspace"]
        for index in range(kspace.shape[0]):
            data = np.asarray(kspace[index])
            total += float(np.sum(np.abs(data.astype(np.complex128)) ** 2))
            count += data.size
    return total / max(count, 1)
