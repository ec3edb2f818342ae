"""Image files read on demand: one PIL decode per access, errors that name the file.

The vision-and-language sets (VQA-VS on COCO, NLVR2) hold far more image pixels than fit in memory, so
their datasets keep paths and decode an image when an example is read. The default transform resizes to
a square and scales to 0..1; a pretrained backbone's :meth:`VisionBackbone.image_transform` replaces it.
:class:`ImageFilesDataset` is that dataset: one image (or a tuple of images, stacked) per example, plus
in-memory tensors such as token ids.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.errors import DataError

ImageTransform = Callable[[Any], Tensor]


def open_image(path: Path) -> Any:
    """The RGB PIL image in ``path``; a missing or unreadable file raises one :class:`DataError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as image:
            return image.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"{path}: image file not found") from err
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from err


def resize_to_tensor(size: int) -> ImageTransform:
    """A transform: PIL image -> float32 ``(3, size, size)`` in 0..1 (bilinear resize, aspect not kept)."""

    def transform(image: Any) -> Tensor:
        from PIL import Image

        resized = image.resize((size, size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

    return transform


def resized_image_input(size: int, count: int | None = None) -> dict[str, Any]:
    """The saved preprocessing of :func:`resize_to_tensor` images (``count`` of them per example: NLVR2's
    pairs): uint8 RGB resized to ``size`` then /255, so image files predict as the loader read them."""
    shape = [3, size, size] if count is None else [count, 3, size, size]
    return {
        "shape": shape,
        "dtype": "uint8",
        "bounds": [0.0, 255.0],
        "standardize": {"scale": [255.0], "mean": [0.0], "std": [1.0]},
        "model_shape": shape,
        "image_file": {"size": [size, size], "resize": True},
    }


def vision_language_inputs(
    modalities: tuple[str, str],
    vision: Any,
    text: Any,
    image_size: int,
    words: Any,
    length: int,
    count: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The saved preprocessing of an image modality and a text modality read as VQA-VS and NLVR2 read
    them: resized images (``count`` per example) and word ids of the training vocabulary ``words``
    (:class:`i2m2.data.easy_vqa.Vocabulary`) without backbones; with a pretrained tower, its local folder
    and settings (its transform or tokenizer, and its features when both towers are frozen), which
    prediction loads again from that folder."""
    from i2m2.data.easy_vqa import vocabulary_text
    from i2m2.inference.pipelines import backbone_step

    image_key, text_key = modalities
    features = vision is not None and text is not None and not (vision.trainable or text.trainable)
    inputs: dict[str, dict[str, Any]] = {}
    if vision is None:
        inputs[image_key] = resized_image_input(image_size, count)
    else:
        inputs[image_key] = {"pipeline": backbone_step(vision, "vision", features)}
    if text is None:
        bounds = [0.0, float(len(words) - 1)]
        inputs[text_key] = {
            "shape": [length],
            "dtype": "int64",
            "bounds": bounds,
            "text": vocabulary_text(words),
        }
    else:
        inputs[text_key] = {"pipeline": backbone_step(text, "text", features)}
    return inputs


def load_image(path: Path, transform: ImageTransform) -> Tensor:
    """``transform(open_image(path))``, checked finite where it is read (a transform can divide by zero)."""
    image = transform(open_image(path))
    if isinstance(image, Tensor) and image.is_floating_point() and not torch.isfinite(image).all():
        raise DataError(f"{path}: the image transform gave NaN or infinite values; expected finite pixels")
    return image


def check_files_exist(paths: list[Path], what: str) -> None:
    """Fail before training, naming the first missing file, instead of in the middle of an epoch."""
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: {what} not found")


class ImageFilesDataset(MultimodalDataset):
    """Examples ``({image_key: image(s), **tensors, **extras}, label)`` with images decoded on access.

    Args:
        image_key: the modality name of the images (``"image"``, or ``"images"`` for NLVR2 pairs).
        image_paths: per example one path (-> ``(3, H, W)``) or a tuple of paths (-> ``(k, 3, H, W)``).
        transform: PIL image -> float tensor.
        tensors: further modalities as in-memory tensors (e.g. ``{"question": (N, L) token ids}``).
        labels: ``(N,)`` integer labels.
        groups: optional per-example groups.
        extras: per-example tensors that are not modalities (e.g. VQA answer counts).
        preload: decode every distinct file once and keep the results in memory (small sets only).
    """

    def __init__(
        self,
        image_key: str,
        image_paths: Sequence[Path | tuple[Path, ...]],
        transform: ImageTransform,
        tensors: Mapping[str, Tensor],
        labels: Tensor,
        groups: Tensor | None = None,
        extras: Mapping[str, Tensor] | None = None,
        preload: bool = False,
    ) -> None:
        if len(image_paths) != len(labels):
            raise ValueError(f"{len(image_paths)} image paths for {len(labels)} labels")
        super().__init__({**tensors, **dict(extras or {})}, labels, groups)
        self.image_key = image_key
        self.image_paths = list(image_paths)
        self.transform = transform
        self.tensors = dict(tensors)
        self.extras = dict(extras or {})
        self.preload = preload
        self._decoded: dict[Path, Tensor] = {}
        if preload:
            for entry in self.image_paths:
                for path in entry if isinstance(entry, tuple) else (entry,):
                    self._image(path)

    def _image(self, path: Path) -> Tensor:
        if not self.preload:
            return load_image(path, self.transform)
        if path not in self._decoded:
            self._decoded[path] = load_image(path, self.transform)
        return self._decoded[path]

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        entry = self.image_paths[index]
        if isinstance(entry, tuple):
            image = torch.stack([self._image(p) for p in entry])
        else:
            image = self._image(entry)
        item = {self.image_key: image, **{m: x[index] for m, x in self.tensors.items()}}
        item.update({k: v[index] for k, v in self.extras.items()})
        return item, self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[dict[str, Tensor], Tensor]:
        """A whole batch, stacked (the batched access :class:`MultimodalDataset` offers a DataLoader)."""
        items = [self[i] for i in indices]
        batch = {k: torch.stack([x[k] for x, _ in items]) for k in items[0][0]}
        return batch, torch.stack([y for _, y in items])

    @property
    def modalities(self) -> tuple[str, ...]:
        return (self.image_key, *self.tensors)

    def subset(self, index: Tensor) -> ImageFilesDataset:
        chosen = ImageFilesDataset(
            self.image_key,
            [self.image_paths[int(i)] for i in index],
            self.transform,
            {m: x[index] for m, x in self.tensors.items()},
            self.labels[index],
            None if self.groups is None else self.groups[index],
            {k: v[index] for k, v in self.extras.items()},
        )
        chosen.preload, chosen._decoded = self.preload, self._decoded  # share the decoded images
        return chosen
