"""fastMRI knee slices with fastMRI+ labels: magnitude and phase of raw k-space as two modalities.

Entry point for an experiment::

    train, val, test = load_fastmri(data_dir, seed, crop=320, cache_dir=None, snr_db=None, max_width=400)
    train.labels            # (N, 4) int64, columns FASTMRI_FINDINGS: acl, meniscus, cartilage, other
    train.modalities        # ("magnitude", "phase", "rss")
    x, y = train[0]         # x: {"magnitude": (1, H, W), "phase": (1, H, W), "rss": (1, H, W)} float32
                            # y: (4,) int64, multi-label
    noisy = test.with_noise(snr_db=10.0, seed=0)   # the same slices with test-time k-space noise

``data_dir`` holds ``knee.csv`` and ``knee_file_list.csv`` (directly or under ``Annotations/``) and the
HDF5 volumes anywhere below it (e.g. ``singlecoil_train/``, ``singlecoil_val/``). The volumes used are
those both listed and on disk; listed volumes missing from disk are skipped, and volumes on disk but not
listed were never reviewed, so they have no labels and are left out too.

Slices are read lazily: construction reads only the HDF5 headers and the CSVs; each ``dataset[i]``
opens its file, reads one slice and runs the FFT (or, with ``cache_dir``, reads one memory-mapped slice
of the volume's cached preprocessing, :mod:`i2m2.data.fastmri_cache`). Opening the file per access keeps
the dataset safe to hand to data-loader worker processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from i2m2.data.fastmri_cache import cache_path, cached_volume
from i2m2.data.fastmri_labels import FASTMRI_FINDINGS, read_file_list, slice_labels
from i2m2.data.fastmri_volume import MODALITIES, Preprocessing, Volume, open_volume, read_slices
from i2m2.errors import DataError

__all__ = ["FASTMRI_FINDINGS", "FastMRISlices", "fastmri_preprocessing", "load_fastmri", "split_volumes"]

SPLIT_FRACTIONS = (0.70, 0.15, 0.15)


class FastMRISlices(Dataset[tuple[dict[str, Tensor], Tensor]]):
    """Map-style dataset of knee slices ``({modality: (1, crop, crop)}, labels (4,))``.

    Args:
        volumes: checked volumes (:func:`i2m2.data.fastmri_volume.open_volume`).
        labels: volume name -> ``(slices, 4)`` 0/1 findings.
        prep: preprocessing settings (crop, width, test-time noise).
        modalities: which images to return, any of ``("magnitude", "phase", "rss")``.
        cache_dir: if given, each volume is preprocessed once and kept there as ``.npy``.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        labels: Mapping[str, np.ndarray],
        prep: Preprocessing,
        modalities: Sequence[str] = MODALITIES,
        cache_dir: Path | None = None,
    ) -> None:
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities:
            raise ValueError(f"modalities: expected a non-empty subset of {MODALITIES}, got {modalities}")
        self.volumes = list(volumes)
        self.prep = prep
        self.modalities = tuple(modalities)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self._labels = {v.name: np.asarray(labels[v.name]) for v in self.volumes}
        self._volume_of = np.repeat(np.arange(len(self.volumes)), [v.num_slices for v in self.volumes])
        self._slice_of = np.concatenate([np.arange(v.num_slices) for v in self.volumes] or [np.zeros(0, int)])
        rows = [self._labels[v.name] for v in self.volumes]
        stacked = np.concatenate(rows) if rows else np.zeros((0, len(FASTMRI_FINDINGS)))
        self.labels: Tensor = torch.as_tensor(stacked, dtype=torch.long)

    def __len__(self) -> int:
        return len(self._volume_of)

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        volume = self.volumes[int(self._volume_of[index])]
        slice_index = int(self._slice_of[index])
        if self.cache_dir is None:
            images = read_slices(volume, [slice_index], self.prep, self.modalities)[0]
        else:
            images = np.array(self._cached(volume)[slice_index])
        finite = np.isfinite(images.reshape(len(self.modalities), -1)).all(1)
        if not finite.all():  # checked where each slice is read: a damaged volume names itself
            raise DataError(
                f"{volume.path}: slice {slice_index} gives NaN or infinite values in "
                f"'{self.modalities[int(np.argmin(finite))]}'; expected finite k-space (a damaged volume?)"
            )
        inputs = {m: torch.from_numpy(images[c : c + 1].copy()) for c, m in enumerate(self.modalities)}
        return inputs, self.labels[index]

    @property
    def volume_names(self) -> list[str]:
        return [v.name for v in self.volumes]

    def with_noise(self, snr_db: float | None, seed: int = 0) -> FastMRISlices:
        """The same slices with test-time k-space noise at ``snr_db`` (None: clean), seeded by ``seed``."""
        prep = replace(self.prep, snr_db=snr_db, noise_seed=seed)
        return FastMRISlices(self.volumes, self._labels, prep, self.modalities, self.cache_dir)

    def _cached(self, volume: Volume) -> np.ndarray:
        assert self.cache_dir is not None
        settings = {**self.prep.settings(), "modalities": list(self.modalities)}
        if self.prep.snr_db is not None:  # keys apart caches written when noise followed each slice's power
            settings["noise_sigma"] = "per volume"
        path = cache_path(self.cache_dir, volume.path, settings)
        every_slice = range(volume.num_slices)
        return cached_volume(path, lambda: read_slices(volume, every_slice, self.prep, self.modalities))


def fastmri_preprocessing(prep: Preprocessing, modalities: Sequence[str]) -> dict[str, Any]:
    """What turns a volume into each modality's model input, as plain values saved with each job: the
    built-in slice pipeline by name with its crop and width settings (clean k-space: test-time noise is an
    evaluation condition, not preprocessing), the four findings, and the ``.h5`` layout ``i2m2 predict``
    reads."""
    settings = {"name": "fastmri-kspace", "crop": prep.crop, "max_width": prep.max_width}
    shape = [1, prep.crop, prep.crop]
    inputs = {
        m: {
            "shape": shape,
            "dtype": "float32",
            "pipeline": settings | {"image": m, "zero_fill": prep.zero_fill},
        }
        for m in modalities
    }
    return {
        "inputs": inputs,
        "classes": ["absent", "present"],
        "tasks": list(FASTMRI_FINDINGS),
        "reader": {"kind": "fastmri-h5", "modalities": list(modalities)},
    }


def split_volumes(
    names: Sequence[str], seed: int, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> tuple[list[str], list[str], list[str]]:
    """Shuffle the volumes with ``seed`` and cut them 70/15/15: slices of one knee never cross splits.

    Validation and test get ``round(fraction * n)`` volumes, at least one each; train gets the rest.
    """
    order = sorted(names)
    np.random.default_rng(seed).shuffle(order)
    n_val = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    cut = len(order) - n_val - n_test
    return sorted(order[:cut]), sorted(order[cut : cut + n_val]), sorted(order[cut + n_val :])


def load_fastmri(
    data_dir: Path,
    seed: int,
    crop: int = 320,
    cache_dir: Path | None = None,
    snr_db: float | None = None,
    max_width: int = 400,
    zero_fill: bool = True,
    modalities: Sequence[str] = MODALITIES,
) -> tuple[FastMRISlices, FastMRISlices, FastMRISlices]:
    """Train, validation and test slices of the fastMRI+ knee volumes under ``data_dir``.

    Args:
        data_dir: folder with the annotations and the HDF5 volumes (see the module docstring).
        seed: seeds the volume split and the test-time noise.
        crop: side of the centre crop.
        cache_dir: optional folder for preprocessed volumes (:mod:`i2m2.data.fastmri_cache`).
        snr_db: test-time noise on the *test* split only (the paper's Appendix C); train and validation
            stay clean. For several levels use ``test.with_noise(snr_db, seed)``.
        max_width: the widest k-space accepted, and the zero-fill width.
        zero_fill: zero-pad the k-space width to ``max_width`` (the authors' choice).
        modalities: the images each example holds.

    Raises:
        DataError: missing annotation files, no usable volume, a volume in the wrong layout, a bad
            annotation row, or a split left without volumes; the message names the file.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder (expected fastMRI volumes and fastMRI+ annotations)")
    file_list_path = _annotation_file(data_dir, "knee_file_list.csv")
    listed = read_file_list(file_list_path)
    on_disk = _volume_files(data_dir)
    prep = Preprocessing(crop=crop, max_width=max_width, zero_fill=zero_fill, noise_seed=seed)
    volumes = {name: open_volume(on_disk[name], prep, modalities) for name in listed if name in on_disk}
    if not volumes:
        raise DataError(f"{file_list_path}: none of the {len(listed)} listed volumes is under {data_dir}")
    num_slices = {name: v.num_slices for name, v in volumes.items()}
    labels = slice_labels(_annotation_file(data_dir, "knee.csv"), listed, num_slices)
    if len(volumes) < 3:
        raise DataError(f"{data_dir}: {len(volumes)} usable volume(s); train, val and test need one each")
    parts = split_volumes(list(volumes), seed)
    train, val, test = (
        FastMRISlices([volumes[n] for n in names], labels, prep, modalities, cache_dir) for names in parts
    )
    for name, part in zip(("train", "val", "test"), (train, val, test), strict=True):
        if len(part) == 0:
            raise DataError(f"{data_dir}: the {name} split has no slices (its volumes are empty)")
    return train, val, test.with_noise(snr_db, seed) if snr_db is not None else test


def _annotation_file(data_dir: Path, name: str) -> Path:
    for path in (data_dir / name, data_dir / "Annotations" / name):
        if path.is_file():
            return path
    raise DataError(f"{data_dir}: no {name} (looked in the folder and in Annotations/)")


def _volume_files(data_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(data_dir.rglob("*.h5")):
        if path.stem in found:
            raise DataError(f"{path}: a second volume named '{path.stem}' (first: {found[path.stem]})")
        found[path.stem] = path
    return found
