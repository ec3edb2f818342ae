"""Read ``.npz`` archives of plain arrays without trusting their headers: anything wrong is one DataError.

``numpy.load`` believes each member's ``.npy`` header: a member whose header claims 80 GB gets 80 GB
allocated before the read finds the data missing; a ``.npy`` saved under a ``.npz`` name comes back as
an array, not an archive; damage inside a compressed member raises ``zlib.error``. Here the archive's
first bytes are checked, then every member's header is read (``numpy.lib.format``, a few hundred bytes
each) and the size it claims is checked against what the member holds, what its compressed bytes can
expand to, and the memory available, all before any array is read.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from i2m2.errors import DataError

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a member first, or an empty archive
# DEFLATE expands at most ~1032:1; a member that claims more than this times its compressed size lies.
DEFLATE_MAX_RATIO = 1032
# What a damaged archive can raise from zipfile, zlib or numpy while it is read.
READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
)


def read_npz_arrays(path: Path, expected: str) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``, fully read; a :class:`DataError` naming the file.

    Args:
        path: the archive.
        expected: what the file should hold, for the messages (e.g. "arrays per modality plus 'labels'").
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected an .npz archive of {expected})")
    try:
        with path.open("rb") as f:
            start = f.read(len(NPY_MAGIC))
        if start.startswith(NPY_MAGIC):
            raise DataError(
                f"{path}: a single .npy array saved under an .npz name; expected an .npz archive "
                f"(numpy.savez) of {expected}"
            )
        if not start.startswith(ZIP_MAGICS):
            raise DataError(f"{path}: not an .npz archive (expected numpy.savez's zip of {expected})")
        on_disk = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            claimed = sum(_member_bytes(path, archive, info, on_disk) for info in archive.infolist())
        available = available_memory()
        if available is not None and claimed > available:
            raise DataError(
                f"{path}: its arrays need {_size(claimed)} of memory, more than the {_size(available)} "
                "available; expected a file that fits in memory (split it, or store smaller dtypes)"
            )
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except DataError:
        raise
    except READ_ERRORS as err:
        kind = "zlib.error" if isinstance(err, zlib.error) else type(err).__name__
        raise DataError(f"{path}: not a readable .npz file ({kind}: {err})") from err


def _member_bytes(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, on_disk: int) -> int:
    """The bytes reading member ``info`` allocates, after checking its header against its size."""
    name = info.filename.removesuffix(".npy")
    if info.compress_size > on_disk:
        raise DataError(
            f"{path}: member '{info.filename}' claims {info.compress_size} stored bytes, more than the "
            f"file's {on_disk}; the file is damaged or truncated"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size > info.compress_size:
        raise DataError(
            f"{path}: member '{info.filename}' claims {info.file_size} bytes but stores "
            f"{info.compress_size}; the file is damaged or truncated"
        )
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > DEFLATE_MAX_RATIO * max(
        info.compress_size, 1
    ):
        raise DataError(
            f"{path}: member '{info.filename}' claims {_size(info.file_size)} from "
            f"{info.compress_size} compressed bytes, more than compression allows; the file is damaged"
        )
    with archive.open(info) as member:
        if member.read(len(NPY_MAGIC)) != NPY_MAGIC:
            return info.file_size  # not an array: numpy returns the member's raw bytes
        major = member.read(2)
        if len(major) != 2 or (major[0], major[1]) not in ((1, 0), (2, 0), (3, 0)):
            raise DataError(f"{path}: array '{name}' has an unknown .npy format version {tuple(major)}")
        reader = npy_format.read_array_header_1_0 if major[0] == 1 else npy_format.read_array_header_2_0
        shape, _, dtype = reader(member)  # version 3 differs from 2 only in allowing utf-8 field names
        header = member.tell()
    need = math.prod(shape) * dtype.itemsize
    holds = info.file_size - header
    if need > holds:
        raise DataError(
            f"{path}: array '{name}' claims shape {tuple(shape)} {dtype} ({_size(need)}) but holds "
            f"{holds} bytes; the file is damaged, truncated or not written by numpy"
        )
    return need


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``, else free physical pages), or ``None``."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: int) -> str:
    """Bytes as ``12.3 GB`` (decimal units), or ``850 bytes``."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
