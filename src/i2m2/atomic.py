"""Write files so that a crash never leaves one half-written: a temp file beside it, then a rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temp file in ``path``'s folder, then atomically replace ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    hyper_parameters: dict[str, Any],
    **plain: Any,
) -> None:
    """A checkpoint is a state_dict plus plain hyperparameters (and other plain values, e.g. the version
    Lightning checks), loadable with ``weights_only=True``."""
    content = {"state_dict": state_dict, "hyper_parameters": hyper_parameters, **plain}
    atomic_write(path, lambda f: torch.save(content, f))
