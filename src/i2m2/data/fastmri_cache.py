"""On-disk cache of preprocessed fastMRI volumes, so later epochs and methods skip the FFTs.

One ``.npy`` per volume, ``(slices, modalities, crop, crop)`` float32, named
``<volume>-<digest>.npy`` where the digest hashes the preprocessing settings, the modalities and the
source file (resolved path, size, modification time): changing any of them, or replacing the file,
gives a new name instead of a stale hit. Files are written atomically (:func:`i2m2.atomic.atomic_write`),
so parallel data-loader workers or runs sharing a cache can at worst compute a volume twice, never read
half of one. Reads are memory-mapped, so a hit costs one slice, not the volume.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.atomic import atomic_write


def cache_path(cache_dir: Path, source: Path, settings: Mapping[str, Any]) -> Path:
    """Where the preprocessed copy of ``source`` under ``settings`` lives in ``cache_dir``."""
    stat = source.stat()
    key = {"source": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **settings}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{source.stem}-{digest}.npy"


def cached_volume(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at ``path`` (memory-mapped), computing and writing it first if absent."""
    if not path.exists():
        array = np.ascontiguousarray(compute(), dtype=np.float32)
        atomic_write(path, lambda f: np.save(f, array))
    return np.load(path, mmap_mode="r")
