"""fastMRI knee (paper Section 4.2, Figures 2-4, Table 5, Figure C.7): magnitude and phase of raw k-space.

``i2m2 run fastmri-knee --data-dir DIR`` trains magnitude-only, phase-only, intra, inter (early fusion:
magnitude and phase as two channels) and I2M2, each predicting four binary findings [ACL, meniscus tear,
cartilage, other] with one product of experts per finding. ``DIR`` holds fastMRI single-coil volumes and
the fastMRI+ annotations (:mod:`i2m2.data.fastmri`), or a simulated phantom (``i2m2 data fastmri-phantom``).

The paper's other rows are companion runs of the same experiment, written into sub-folders of the main
run so that ``i2m2 analyze RUN`` finds them (:mod:`i2m2.analysis.fastmri`):

* ``--rss-baseline`` -> ``RUN/rss``: the RSS image as the single-modality baseline row of Figure 2. RSS
  is a third image, not part of intra, inter or I2M2, so it is its own one-modality experiment (its only
  row is ``unimodal:rss``).
* ``--architecture wrn20-3 --methods unimodal:magnitude unimodal:phase inter`` -> ``RUN/wrn20-3``
  (Figure 4; parameter counts are read from the checkpoints).
* ``--from-scratch --methods i2m2`` -> ``RUN/from-scratch`` (Table 5).
* ``--noise-sweep-db 20 10 0`` -> ``RUN/noise-sweep`` (Figure C.7): the test set is scored clean and at
  each SNR; per-example predictions carry the level as their group.

Figure 3's parameter-matched ensembles need no run of their own: they average the main run's saved
per-seed test probabilities of models trained alone (the volume split is fixed by ``--split-seed``, so
every seed has the same test set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset

from i2m2.catalog import register_experiment
from i2m2.data.fastmri import FASTMRI_FINDINGS, FastMRISlices, fastmri_preprocessing, load_fastmri
from i2m2.data.fastmri_phantom import PHANTOM_SIZE, phantom_max_width, phantom_run_command, phantom_size
from i2m2.data.stand_in import is_simulated
from i2m2.errors import DataError, UserError
from i2m2.experiment import Experiment, Recipe, StageChanges, StageConfig
from i2m2.models.encoders import PreActResNet18, SmallCNN, wide_resnet_20_3
from i2m2.models.expert import Expert
from i2m2.models.fusion import EarlyFusion
from i2m2.models.multitask_head import MultiTaskHead
from i2m2.objectives.multitask import MultiTaskObjective, class_weights_from_labels

KSPACE_MODALITIES = ("magnitude", "phase")
Architecture = Literal["preact18", "wrn20-3", "cnn"]
DEFAULT_WIDTH: dict[str, int] = {"preact18": 64, "wrn20-3": 16, "cnn": 8}  # the paper's, and cnn's CPU width

# Table B.6 (AdamW; the authors' code, classifier.py). Epochs, batch and patience are not in the paper:
# the authors' code trains at most 200 epochs, batch 16, early stopping after 5 epochs without a better
# mean validation AUROC. Stage 2 is I2M2's row (lr 1e-6, wd 1e-2) with intra's own row (wd 1e-3) as a
# per-method change (Recipe.finetune_methods).
PAPER = Recipe(
    pretrain=StageConfig(
        optimizer="adamw", lr=1e-5, weight_decay=1e-3, max_epochs=200, batch_size=16, patience=5
    ),
    finetune=StageConfig(
        optimizer="adamw", lr=1e-6, weight_decay=1e-2, max_epochs=200, batch_size=16, patience=5
    ),
    experts={
        "magnitude": StageChanges(lr=1e-5, weight_decay=1e-3),
        "phase": StageChanges(lr=1e-4, weight_decay=1e-1),
        "inter": StageChanges(lr=1e-4, weight_decay=1e-2),
    },
    finetune_methods={"intra": StageChanges(lr=1e-6, weight_decay=1e-3)},
)
# The phantom on two CPU cores (docs/fastmri.md): with it, --architecture defaults to the small CNN
# (width 8) and --crop / --max-width to the phantom's 64 / 80. Table B.6's rates (tuned for 11M-parameter
# networks, thousands of slices and up to 200 epochs) barely move a small network in 15 epochs. The inter
# model finds the ACL (a conjunction of both channels) only after a plateau of several epochs, hence the
# patience of 10.
CPU = Recipe(
    pretrain=StageConfig(
        optimizer="adamw", lr=2e-3, weight_decay=1e-4, max_epochs=30, batch_size=16, patience=10
    ),
    finetune=StageConfig(
        optimizer="adamw", lr=2e-4, weight_decay=1e-4, max_epochs=5, batch_size=16, patience=3
    ),
)
PRESETS = {"paper": PAPER, "cpu": CPU}


def encoder_features(encoder: nn.Module) -> int:
    size = getattr(encoder, "out_features", None)
    if not isinstance(size, int):
        raise ValueError(f"{type(encoder).__name__}: expected an integer out_features attribute")
    return size


class FindingsClassifier(nn.Module):
    """An image encoder and one 2-way head per finding: ``(B, channels, H, W) -> (B, findings, 2)``."""

    def __init__(self, encoder: nn.Module, findings: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = MultiTaskHead(encoder_features(encoder), findings, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


def image_encoder(architecture: str, in_channels: int, width: int) -> nn.Module:
    """PreActResNet-18 with GroupNorm (the authors'), WideResNet-20-3 or the small CPU CNN: features."""
    if architecture == "preact18":
        return PreActResNet18(in_channels, None, width=width, norm="group")
    if architecture == "wrn20-3":
        return wide_resnet_20_3(in_channels, None, width=width)
    if architecture == "cnn":
        return SmallCNN(in_channels, width=width)
    raise UserError(f"--architecture: expected one of {list(DEFAULT_WIDTH)}, got {architecture!r}")


class NoiseSweep(ConcatDataset[tuple[dict[str, Tensor], Tensor]]):
    """The test slices clean, then at each SNR; ``groups`` holds each example's level (0: clean)."""

    def __init__(self, test: FastMRISlices, levels: list[float], seed: int) -> None:
        parts = [test] + [test.with_noise(level, seed) for level in levels]
        super().__init__(parts)
        self.modalities = test.modalities
        self.labels = torch.cat([p.labels for p in parts])
        self.groups = np.repeat(np.arange(len(parts)), len(test))


@dataclass
class FastMRISplits:
    train: Dataset[tuple[dict[str, Tensor], Tensor]]
    val: Dataset[tuple[dict[str, Tensor], Tensor]]
    test: Dataset[tuple[dict[str, Tensor], Tensor]]
    num_classes: int = 2
    # The k-space pipeline's settings (i2m2.inference.pipelines), saved beside each checkpoint.
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def load(self, group: str, folder: Path | None, seed: int) -> FastMRISplits:
        """``load_data``: the split is fixed by ``split_seed``; the run seed sets weights and batch order."""
        return self


def level_name(snr_db: float) -> str:
    return f"{snr_db:g} dB"


@dataclass(frozen=True)
class ScoringNoise:
    """Complex Gaussian k-space noise on the test split: none, at one SNR, or a sweep (the test slices clean,
    then at each SNR, each example's level its group: Figure C.7)."""

    snr_db: float | None = None
    sweep_db: tuple[float, ...] = ()

    @classmethod
    def checked(cls, snr_db: float | None, sweep_db: list[float] | None) -> ScoringNoise:
        if snr_db is not None and sweep_db:
            raise UserError("--test-snr-db and --noise-sweep-db: give one of them")
        return cls(snr_db, tuple(sweep_db or ()))

    def applied_to(self, test: FastMRISlices, seed: int) -> Dataset[tuple[dict[str, Tensor], Tensor]]:
        if self.snr_db is not None:
            test = test.with_noise(self.snr_db, seed)
        return NoiseSweep(test, list(self.sweep_db), seed) if self.sweep_db else test

    @property
    def description(self) -> str:
        noise = f", test at {self.snr_db:g} dB" if self.snr_db is not None else ""
        levels = ", ".join(map(level_name, self.sweep_db))
        sweep = f", test clean + {levels} pooled (per level: i2m2 analyze)" if self.sweep_db else ""
        return noise + sweep

    @property
    def group_names(self) -> tuple[str, ...]:
        return ("clean", *map(level_name, self.sweep_db)) if self.sweep_db else ()


@dataclass(frozen=True)
class FindingsExperts:
    """The experts' builders: an image network (``architecture`` of ``width`` base channels) with one 2-way
    head per finding."""

    architecture: str
    width: int

    def unimodal(self, modality: str, classes: int, group: str = "") -> nn.Module:
        return FindingsClassifier(image_encoder(self.architecture, 1, self.width), len(FASTMRI_FINDINGS))

    def early_fusion(self, fused: tuple[str, ...], classes: int, group: str = "") -> Expert:
        """The paper's inter expert: the modalities stacked as channels of one image network (unused by the
        one-modality RSS run, whose only row is unimodal)."""
        encoder = image_encoder(self.architecture, len(fused), self.width)
        return EarlyFusion(fused, FindingsClassifier(encoder, len(FASTMRI_FINDINGS)))


def preset_defaults(
    preset: str, architecture: Architecture | None, width: int | None, crop: int | None, max_width: int | None
) -> tuple[FindingsExperts, int, int]:
    """The experts, the crop and the widest k-space, with the preset's defaults: the cpu preset's fit
    'i2m2 data fastmri-phantom' on two cores (the small CNN, the phantom's crop and k-space width)."""
    if preset not in PRESETS:
        raise UserError(f"--preset: expected one of {list(PRESETS)}, got {preset!r}")
    phantom = preset == "cpu"
    architecture = architecture or ("cnn" if phantom else "preact18")
    if architecture not in DEFAULT_WIDTH:
        raise UserError(f"--architecture: expected one of {list(DEFAULT_WIDTH)}, got {architecture!r}")
    if crop is None:
        crop = PHANTOM_SIZE if phantom else 320
    if max_width is None:
        max_width = phantom_max_width(crop) if phantom else 400
    width = DEFAULT_WIDTH[architecture] if width is None else width
    if width < 1 or crop < 1:
        raise UserError(f"--width and --crop must be >= 1, got {width} and {crop}")
    return FindingsExperts(architecture, width), crop, max_width


def preset_recipe(preset: str, rss_baseline: bool) -> Recipe:
    """The preset's recipe; the RSS row trains like the magnitude row (both are magnitude images)."""
    recipe = PRESETS[preset]
    if not rss_baseline:
        return recipe
    changes = recipe.experts.get("magnitude")
    return Recipe(recipe.pretrain, recipe.finetune, {"rss": changes} if changes else {})


def describe(
    rss_baseline: bool, experts: FindingsExperts, crop: int, preset: str, noise: ScoringNoise
) -> str:
    """The run's one line: the images, the network, the crop, the recipe and the test split's noise."""
    images = "RSS" if rss_baseline else "magnitude + phase"
    network = f"{experts.architecture} width {experts.width}"
    return f"fastMRI knee {images}, {network}, crop {crop}, {preset} recipe{noise.description}"


@register_experiment("fastmri-knee")
def fastmri_knee(
    data_dir: Path | None = None,
    architecture: Architecture | None = None,
    width: int | None = None,
    crop: int | None = None,
    max_width: int | None = None,
    cache_dir: Path | None = None,
    preset: Literal["paper", "cpu"] = "paper",
    rss_baseline: bool = False,
    test_snr_db: float | None = None,
    noise_sweep_db: list[float] | None = None,
    split_seed: int = 0,
) -> Experiment:
    """fastMRI knee: magnitude and phase of raw k-space, four findings (paper Figures 2-4, Table 5, C.7).

    Args:
        data_dir: fastMRI single-coil volumes + fastMRI+ annotations (or 'i2m2 data fastmri-phantom').
        architecture: preact18 (PreActResNet-18, GroupNorm; the paper's), wrn20-3 (WideResNet-20-3, Fig. 4)
            or cnn (3 conv blocks + global max-pool; not the paper's). Default preact18; cnn if --preset cpu.
        width: base channels (default: 64 for preact18, 16 for wrn20-3 (the paper's), 8 for cnn).
        crop: side of the image centre crop (default 320 as in the paper; 64, the phantom's, if --preset cpu).
        max_width: widest k-space accepted and its zero-fill width (default 400; 80 with --preset cpu).
        cache_dir: keep preprocessed slices here (.npy per volume), so epochs and methods skip the FFTs.
        preset: paper (Table B.6 per method, AdamW) or cpu (small networks on the phantom).
        rss_baseline: the RSS-image-only row of Figure 2 (a one-modality run; put it in RUN/rss).
        test_snr_db: complex Gaussian k-space noise on the test split at this SNR (dB).
        noise_sweep_db: score the test split clean and at each of these SNRs (Figure C.7).
        split_seed: seed of the 70/15/15 volume split, the same for every run seed.
    """
    if data_dir is None:
        raise UserError(
            "experiment 'fastmri-knee' reads files: pass --data-dir DIR (see 'i2m2 data fastmri-phantom')"
        )
    experts, crop, max_width = preset_defaults(preset, architecture, width, crop, max_width)
    noise = ScoringNoise.checked(test_snr_db, noise_sweep_db)
    modalities = ("rss",) if rss_baseline else KSPACE_MODALITIES
    try:
        train, val, test = load_fastmri(
            Path(data_dir),
            split_seed,
            crop=crop,
            cache_dir=cache_dir,
            max_width=max_width,
            modalities=modalities,
        )
    except DataError as err:
        size = phantom_size(data_dir)
        if size is None:
            raise
        # The phantom with the paper's crop 320 (or a crop its size cannot give): the one command that fits.
        raise DataError(
            f"{err}. {data_dir} holds i2m2's simulated phantom ({size}x{size} images): train on it with "
            f"'{phantom_run_command(data_dir, size)}'"
        ) from err
    return Experiment(
        name="fastmri-knee",
        description=describe(rss_baseline, experts, crop, preset, noise),
        modalities=modalities,
        num_classes=2,
        load_data=FastMRISplits(
            train,
            val,
            noise.applied_to(test, split_seed),
            preprocessing=fastmri_preprocessing(train.prep, modalities),
        ).load,
        build_unimodal=experts.unimodal,
        build_inter={"early": experts.early_fusion},
        recipe=preset_recipe(preset, rss_baseline),
        needs_data_dir=True,
        monitor="auroc",
        objective=MultiTaskObjective(FASTMRI_FINDINGS, class_weights_from_labels(train.labels)),
        analyses=("fastmri",),  # four findings per example: Figures 2-4, Table 5, C.7, not the generic ones
        group_names=noise.group_names,
        simulated=is_simulated(data_dir),
    )
