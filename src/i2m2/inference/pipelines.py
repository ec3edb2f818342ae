"""Built-in input pipelines a saved preprocessing record may name: raw files or arrays -> model inputs.

Some experiments turn raw data into model inputs with steps that are not a per-feature affine map:
fastMRI's zero-fill, centred inverse FFT, centre crop and per-slice percentile scaling of k-space; a
pretrained tower's image transform, tokenizer and (frozen) features, read from its local folder. The
record beside the checkpoint then holds, per modality, ``{"name": <a pipeline below>, ...plain settings}``
and prediction runs the data loader's own functions with those settings. Only the names listed in
:data:`PIPELINES` are accepted, so a record names code that ships with i2m2 and never carries any.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from i2m2.errors import DataError, UserError

FASTMRI = "fastmri-kspace"
FASTMRI_IMAGES = ("magnitude", "phase", "rss")


def _fastmri_settings(value: dict[str, Any]) -> dict[str, Any]:
    image = str(value["image"])
    if image not in FASTMRI_IMAGES:
        raise ValueError(f"fastmri-kspace image {image!r} is not one of {FASTMRI_IMAGES}")
    return {
        "name": FASTMRI,
        "image": image,
        "crop": int(value["crop"]),
        "max_width": int(value["max_width"]),
        "zero_fill": bool(value.get("zero_fill", True)),
    }


def volume_files(path: Path) -> list[Path]:
    """The fastMRI HDF5 volumes a path names: the file itself, or every ``*.h5`` below a folder (sorted)."""
    if path.is_dir():
        files = sorted(path.rglob("*.h5"))
        if not files:
            raise DataError(f"{path}: no .h5 volumes in the folder (expected fastMRI single-coil files)")
        return files
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a fastMRI .h5 volume or a folder of them)")
    return [path]


def fastmri_slices(modality: str, values: np.ndarray, settings: dict[str, Any]) -> np.ndarray | None:
    """fastMRI's own slice pipeline (:func:`i2m2.data.fastmri_volume.read_slices`, clean k-space) on raw
    inputs, ``(N, 1, crop, crop)`` float32; ``None`` for model-ready images, which pass through.

    Raw inputs: ``.h5`` volume paths or folders of them (one example per slice, in file order); complex
    k-space slices ``(N, H, W)`` for the magnitude and phase images; RSS images ``(N, H, W)`` for ``rss``.
    """
    from i2m2.data.fastmri_volume import Preprocessing, open_volume, read_slices
    from i2m2.data.kspace import center_crop, scale_magnitude, slice_modalities

    image, crop = settings["image"], settings["crop"]
    prep = Preprocessing(crop=crop, max_width=settings["max_width"], zero_fill=settings["zero_fill"])
    if values.dtype.kind in "UO":
        paths = values.reshape(-1)
        parts = []
        for row, path in enumerate(paths):
            if not isinstance(path, str | PathLike):
                raise UserError(
                    f"modality '{modality}' row {row}: expected a fastMRI .h5 path, got {type(path).__name__}"
                )
            for file in volume_files(Path(path)):
                volume = open_volume(file, prep, [image])  # a DataError naming the file for a bad layout
                parts.append(read_slices(volume, range(volume.num_slices), prep, [image]))
        return np.concatenate(parts) if parts else np.zeros((0, 1, crop, crop), np.float32)
    if values.ndim != 3:
        return None
    complex_input = values.dtype.kind == "c"
    if image == "rss" and complex_input:
        raise UserError(f"modality '{modality}': expected real RSS images (N, H, W), got complex values")
    if image != "rss" and not complex_input:
        raise UserError(
            f"modality '{modality}': expected complex k-space slices (N, H, W) or model-ready images "
            f"(N, 1, {crop}, {crop}), got {values.dtype} {values.shape}"
        )
    out = np.empty((len(values), 1, crop, crop), dtype=np.float32)
    zero_fill = settings["max_width"] if settings["zero_fill"] else None
    for row, value in enumerate(values):
        try:
            if image == "rss":
                out[row, 0] = scale_magnitude(center_crop(value, crop))
            else:
                if value.shape[-1] > settings["max_width"]:
                    raise ValueError(
                        f"k-space width {value.shape[-1]} exceeds the maximum {settings['max_width']}"
                    )
                magnitude, phase = slice_modalities(value, crop, zero_fill)
                out[row, 0] = magnitude if image == "magnitude" else phase
        except ValueError as err:
            raise UserError(f"modality '{modality}' row {row}: {err}") from None
    return out


BACKBONE = "hf-backbone"
TOWERS = ("vision", "text")


def _backbone_settings(value: dict[str, Any]) -> dict[str, Any]:
    tower = str(value["tower"])
    if tower not in TOWERS:
        raise ValueError(f"hf-backbone tower {tower!r} is not one of {TOWERS}")
    return {
        "name": BACKBONE,
        "tower": tower,
        "folder": str(value["folder"]),
        "pooling": str(value.get("pooling", "cls")),
        "max_length": int(value.get("max_length", 32)),
        "features": bool(value["features"]),
    }


def backbone_step(backbone: Any, tower: str, features: bool) -> dict[str, Any]:
    """The record of a pretrained tower: its local folder and settings (plain values; the weights stay in
    the folder, read again at prediction time)."""
    return {
        "name": BACKBONE,
        "tower": tower,
        "folder": str(Path(backbone.folder).resolve()),
        "pooling": backbone.pooling,
        "max_length": int(getattr(backbone, "max_length", 32)),
        "features": features,
    }


_TOWERS: dict[tuple[str, str, str, int], Any] = {}


def _tower(modality: str, settings: dict[str, Any]) -> Any:
    """The recorded backbone, loaded once per process; one error naming the folder when it is gone."""
    from i2m2.models.backbones import text_backbone, vision_backbone

    folder = Path(settings["folder"])
    if not folder.is_dir():
        raise UserError(
            f"modality '{modality}': the {settings['tower']} backbone folder {folder} the model was trained "
            "with is not there; put the same save_pretrained folder back at that path to predict on raw "
            "inputs (or give model-ready arrays)"
        )
    key = (settings["tower"], str(folder), settings["pooling"], settings["max_length"])
    if key not in _TOWERS:
        if settings["tower"] == "vision":
            _TOWERS[key] = vision_backbone(folder, settings["pooling"]).eval()
        else:
            _TOWERS[key] = text_backbone(
                folder, settings["pooling"], max_length=settings["max_length"]
            ).eval()
    return _TOWERS[key]


def backbone_inputs(modality: str, values: np.ndarray, settings: dict[str, Any]) -> np.ndarray | None:
    """A pretrained tower's own input steps on raw inputs: image paths ``(N,)`` (``(N, k)`` for pairs)
    through its image transform, texts ``(N,)`` through its tokenizer, then (``features``) the frozen
    tower itself, as the data loader did; ``None`` for model-ready arrays, which pass as they are."""
    import torch

    from i2m2.data.image_files import load_image

    if values.dtype.kind not in "UO":
        return None
    tower = _tower(modality, settings)
    flat = values.reshape(-1)
    per_row = max(1, flat.size // max(1, len(values)))  # 2 for NLVR2's pairs
    text = settings["tower"] == "text"
    for index, value in enumerate(flat):
        if not isinstance(value, str if text else str | PathLike):
            what = "a string" if text else "an image file path"
            raise UserError(
                f"modality '{modality}' row {index // per_row}: expected {what}, got {type(value).__name__}"
            )
    with torch.no_grad():
        if settings["tower"] == "text":
            out = tower.tokenize([str(v) for v in flat])
        else:
            out = torch.stack([load_image(Path(p), tower.image_transform) for p in flat])
        if settings["features"]:
            out = tower(out)
    return out.reshape(*values.shape, *out.shape[1:]).numpy()


PIPELINES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], Callable[..., np.ndarray | None]]] = {
    FASTMRI: (_fastmri_settings, fastmri_slices),
    BACKBONE: (_backbone_settings, backbone_inputs),
}


def pipeline_settings(value: Any) -> dict[str, Any] | None:
    """A record's pipeline entry checked and reduced to plain settings; ValueError for an unknown name."""
    if value is None:
        return None
    name = str(value["name"])
    if name not in PIPELINES:
        raise ValueError(f"pipeline {name!r} is not a built-in one ({sorted(PIPELINES)})")
    return PIPELINES[name][0](value)


def run_pipeline(modality: str, values: np.ndarray, settings: dict[str, Any]) -> np.ndarray | None:
    """The named pipeline on one modality's raw values; ``None`` where the values are model-ready."""
    return PIPELINES[settings["name"]][1](modality, values, settings)
