"""A fingerprint of the data a run reads: each file's size and a fast hash, so ``--resume`` cannot mix data.

Replacing the files under ``--data_dir`` between two invocations would otherwise give a table whose seed 0
was trained on the old data and seed 1 on the new. Each file is hashed from a few sampled blocks (its start,
its end and evenly spaced blocks between) plus its size: fast on gigabytes, and any rewrite of a data file
changes it. Hidden files and the folders a run itself writes into (caches) are left out.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

BLOCK = 4096
SAMPLES = 8  # blocks read per file beyond the first and the last
WHOLE_UP_TO = 1 << 16  # files this small are hashed whole


def file_hash(path: Path) -> str:
    """The size and a hash of sampled blocks of one file."""
    size = path.stat().st_size
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as f:
        if size <= WHOLE_UP_TO:
            digest.update(f.read())
        else:
            step = (size - BLOCK) // (SAMPLES + 1)
            for offset in [0, *(step * k for k in range(1, SAMPLES + 1)), size - BLOCK]:
                f.seek(offset)
                digest.update(f.read(BLOCK))
    return digest.hexdigest()


def data_fingerprint(data_dir: Path | None, exclude: Iterable[Path] = ()) -> dict[str, str] | None:
    """``{relative path: hash}`` of every file under ``data_dir`` (or of the file itself); ``None`` without.

    Args:
        data_dir: the run's ``--data_dir``.
        exclude: folders inside it that the run writes (a preprocessing cache), left out.
    """
    if data_dir is None:
        return None
    root = Path(data_dir).resolve()
    if root.is_file():
        return {root.name: file_hash(root)}
    skipped = {Path(p).resolve() for p in exclude}
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() not in skipped)
        for name in sorted(files):
            if not name.startswith("."):
                path = here / name
                found[path.relative_to(root).as_posix()] = file_hash(path)
    return found


def fingerprint_changes(old: dict[str, str] | None, new: dict[str, str] | None, limit: int = 3) -> list[str]:
    """What differs between two fingerprints, as short phrases naming the files."""
    old, new = old or {}, new or {}
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    phrases = [f"{k} changed" for k in changed] + [f"{k} added" for k in added]
    phrases += [f"{k} removed" for k in removed]
    if len(phrases) > limit:
        return [*phrases[:limit], f"and {len(phrases) - limit} more"]
    return phrases
