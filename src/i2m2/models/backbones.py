"""Pretrained Hugging Face encoders from a local folder, as plain feature encoders ``x -> (batch, D)``.

The paper's VQA-VS and NLVR2 rows use pretrained vision and text towers (Swin + RoBERTa in FIBER). Any
``transformers`` model folder written by ``save_pretrained`` plugs in here:

* :func:`vision_backbone` ``(folder)`` -> :class:`VisionBackbone`: ``(batch, 3, H, W)`` pixel values ->
  ``(batch, D)``; ``image_transform(pil_image)`` turns one image into those pixel values with the
  folder's image processor (``preprocessor_config.json``), else a plain resize to the config's
  ``image_size`` scaled to 0..1.
* :func:`text_backbone` ``(folder)`` -> :class:`TextBackbone`: ``(batch, L)`` token ids padded with the
  tokenizer's pad id -> ``(batch, D)``; ``tokenize(texts)`` gives those ids.

Pooling: ``"cls"`` (first token), ``"pooler"`` (the model's ``pooler_output``), ``"mean"`` (mean over
real tokens / spatial positions). Backbones are frozen by default (the paper's VQA-VS recipe trains only
MLP heads on top; compute the features once with :mod:`i2m2.data.feature_cache`); ``trainable=True``
fine-tunes the whole tower (the NLVR2 recipe): put the backbone in an expert, e.g.
``UnimodalExpert("question", nn.Sequential(text_backbone(p, trainable=True), MLPHead(...)))``.

Models are read with ``local_files_only=True``: nothing is downloaded. ``transformers`` is imported only
when a backbone is built, so the base install works without it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from i2m2.errors import DataError, UserError

POOLINGS = ("cls", "pooler", "mean")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")


def transformers_module() -> Any:
    """``import transformers``, or one clear :class:`UserError` saying which extra to install."""
    try:
        import transformers
    except ModuleNotFoundError as err:
        raise UserError('pretrained backbones need transformers: pip install "i2m2[vl]"') from err
    return transformers


def weight_files(folder: Path) -> list[Path]:
    """The weight files of a model folder (sharded or not), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def check_backbone_folder(folder: Path) -> Path:
    """Fail early, naming the folder, when it is not a saved model: no folder, no config, no weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: backbone folder not found (expected a save_pretrained model folder)")
    if not (folder / "config.json").is_file():
        raise DataError(f"{folder}: no config.json; not a save_pretrained model folder")
    if not weight_files(folder):
        raise DataError(f"{folder}: backbone folder without weights (model.safetensors, pytorch_model.bin)")
    return folder


def backbone_key(folder: Path) -> str:
    """A short hash of the folder's config and the names, sizes and mtimes of its weight files.

    Changing the model (new weights, edited config) changes the key, so cached features computed with
    the old model are never reused; hashing sizes and mtimes instead of the content keeps this instant
    for multi-gigabyte weights.
    """
    folder = check_backbone_folder(folder)
    digest = hashlib.sha256((folder / "config.json").read_bytes())
    for path in weight_files(folder):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


class _Backbone(nn.Module):
    """A ``transformers`` model, a pooling rule, and the frozen/trainable switch shared by both towers."""

    def __init__(self, folder: Path, pooling: str, trainable: bool) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; expected one of {POOLINGS}")
        self.folder = check_backbone_folder(folder)
        transformers = transformers_module()
        try:
            self.model = transformers.AutoModel.from_pretrained(self.folder, local_files_only=True)
        except (OSError, ValueError) as err:
            raise DataError(f"{self.folder}: cannot load the backbone ({err})") from err
        self.pooling = pooling
        self.trainable = trainable
        self.out_features = _hidden_size(self.model.config, self.folder)
        if not trainable:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> _Backbone:
        """A frozen backbone stays in eval mode (no dropout), whatever the training loop asks."""
        super().train(mode)
        if not self.trainable:
            self.model.eval()
        return self

    @property
    def cache_key(self) -> str:
        """What the features depend on: the model files and this wrapper's settings."""
        return hashlib.sha256(f"{backbone_key(self.folder)}:{self._settings()}".encode()).hexdigest()[:16]

    def _settings(self) -> str:
        return f"pooling={self.pooling}"

    def _pool(self, outputs: Any, mask: Tensor | None) -> Tensor:
        if self.pooling == "pooler":
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                raise UserError(f"{self.folder}: the model has no pooler output; use pooling 'cls' or 'mean'")
            return pooled.flatten(1)
        hidden = outputs.last_hidden_state
        if hidden.dim() == 4:  # convolutional models: (batch, channels, h, w)
            hidden = hidden.flatten(2).transpose(1, 2)
        if self.pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(dim=1)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class VisionBackbone(_Backbone):
    """Image tower: ``(batch, 3, H, W)`` pixel values -> pooled ``(batch, out_features)``.

    Args:
        folder: a ``save_pretrained`` folder of a vision model (ViT, Swin, ResNet, ...).
        pooling: one of :data:`POOLINGS`.
        trainable: fine-tune the tower (else frozen, in eval mode, no gradients).
    """

    def __init__(self, folder: Path, pooling: str = "cls", trainable: bool = False) -> None:
        super().__init__(folder, pooling, trainable)
        if not hasattr(self.model.config, "num_channels"):  # a text model's folder given for the images
            kind = getattr(self.model.config, "model_type", "?")
            raise DataError(
                f"{self.folder}: a '{kind}' model, not an image model; expected a vision backbone folder "
                "(ViT, Swin, ConvNeXt, ResNet, ...)"
            )
        self.processor = _image_processor(self.folder)
        self.image_size = _image_size(self.model.config)

    def forward(self, pixel_values: Tensor) -> Tensor:
        if pixel_values.dim() != 4:
            raise ValueError(f"VisionBackbone: expected (batch, 3, H, W), got {tuple(pixel_values.shape)}")
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            return self._pool(self.model(pixel_values=pixel_values), None)

    def image_transform(self, image: Any) -> Tensor:
        """One PIL image -> float ``(3, H, W)`` pixel values, as this model expects them."""
        if self.processor is not None:
            return self.processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        resized = image.convert("RGB").resize((self.image_size, self.image_size))
        return torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)

    def _settings(self) -> str:
        return f"pooling={self.pooling};size={self.image_size};processor={self.processor is not None}"


class TextBackbone(_Backbone):
    """Text tower: ``(batch, L)`` token ids padded with ``pad_id`` -> pooled ``(batch, out_features)``.

    The attention mask is ``ids != pad_id``, so one int64 tensor per example is the whole modality.

    Args:
        folder: a ``save_pretrained`` folder holding the model and its tokenizer.
        pooling: one of :data:`POOLINGS`.
        trainable: fine-tune the tower.
        max_length: token ids per text (longer texts are cut, shorter ones padded).
    """

    def __init__(
        self, folder: Path, pooling: str = "cls", trainable: bool = False, max_length: int = 32
    ) -> None:
        super().__init__(folder, pooling, trainable)
        try:
            self.tokenizer = transformers_module().AutoTokenizer.from_pretrained(
                self.folder, local_files_only=True
            )
        except (OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DataError(
                f"{self.folder}: no usable tokenizer in the backbone folder ({first}); expected a text model "
                "saved with its tokenizer (BERT, RoBERTa, ...)"
            ) from err
        if self.tokenizer.pad_token_id is None:
            raise DataError(f"{self.folder}: the tokenizer has no padding token")
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.max_length = max_length

    def forward(self, ids: Tensor) -> Tensor:
        if ids.dim() != 2 or ids.is_floating_point():
            raise ValueError(f"TextBackbone: expected int token ids (batch, L), got {tuple(ids.shape)}")
        mask = (ids != self.pad_id).long()
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            outputs = self.model(input_ids=ids, attention_mask=mask)
        return self._pool(outputs, mask)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """``(N, max_length)`` int64 ids, padded with :attr:`pad_id`."""
        encoded = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return encoded["input_ids"].long()

    def _settings(self) -> str:
        return f"pooling={self.pooling};max_length={self.max_length}"


def vision_backbone(folder: Path, pooling: str = "cls", trainable: bool = False) -> VisionBackbone:
    """The image tower in ``folder`` (frozen unless ``trainable``)."""
    return VisionBackbone(Path(folder), pooling, trainable)


def text_backbone(
    folder: Path, pooling: str = "cls", trainable: bool = False, max_length: int = 32
) -> TextBackbone:
    """The text tower and tokenizer in ``folder`` (frozen unless ``trainable``)."""
    return TextBackbone(Path(folder), pooling, trainable, max_length)


def _hidden_size(config: Any, folder: Path) -> int:
    size = getattr(config, "hidden_size", None)
    if isinstance(size, int):
        return size
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise DataError(f"{folder}/config.json: cannot tell the feature size (no hidden_size or hidden_sizes)")


def _image_size(config: Any) -> int:
    size = getattr(config, "image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def _image_processor(folder: Path) -> Any:
    if not (folder / "preprocessor_config.json").is_file():
        return None
    try:
        return transformers_module().AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DataError(f"{folder}/preprocessor_config.json: unusable image processor ({err})") from err


def describe(backbone: _Backbone) -> str:
    """A one-line JSON description (folder, key, settings), written beside cached features."""
    return json.dumps(
        {"folder": str(backbone.folder), "key": backbone.cache_key, "settings": backbone._settings()}
    )
