"""Change an experiment's training recipe from a YAML file, without editing code (``i2m2 run --config``).

The file holds ``pretrain`` and/or ``finetune``. ``pretrain`` is either one set of stage settings for every
expert or a mapping from expert name (a modality, or ``inter``) to settings; each set of settings may change
any field of :class:`StageConfig`::

    pretrain:
      inter: {lr: 0.1, gradient_clip_val: 8.0}
    finetune:
      max_epochs: 10
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import yaml

from i2m2.errors import UserError
from i2m2.experiments.spec import Experiment, StageConfig

STAGE_FIELDS = {f.name for f in fields(StageConfig)}


def _stage(base: StageConfig, changes: Any, where: str) -> StageConfig:
    if not isinstance(changes, dict):
        raise UserError(f"{where}: expected a mapping of {sorted(STAGE_FIELDS)}, got {changes!r}")
    unknown = set(changes) - STAGE_FIELDS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(STAGE_FIELDS)}")
    return replace(base, **changes)


def apply_overrides(experiment: Experiment, path: Path) -> Experiment:
    """The experiment with the recipe changes in ``path`` applied; a :class:`UserError` for bad files."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise UserError(f"--config {path}: cannot read ({err.strerror or err})") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"--config {path}: not valid YAML{where} ({getattr(err, 'problem', err)})") from err
    data = data or {}
    if not isinstance(data, dict) or set(data) - {"pretrain", "finetune"}:
        extra = sorted(set(data) - {"pretrain", "finetune"}) if isinstance(data, dict) else data
        raise UserError(f"--config {path}: unknown key(s) {extra}; expected 'pretrain' and/or 'finetune'")
    pretrain = experiment.pretrain
    changes = data.get("pretrain")
    if changes is not None:
        experts = {*experiment.modalities, "inter"}
        if isinstance(changes, dict) and set(changes) <= experts and not set(changes) & STAGE_FIELDS:
            pretrain = {
                name: _stage(experiment.stage1_config(name), changes.get(name, {}), f"pretrain.{name}")
                for name in experts
            }
        elif isinstance(pretrain, StageConfig):
            pretrain = _stage(pretrain, changes, "pretrain")
        else:
            pretrain = {name: _stage(cfg, changes, "pretrain") for name, cfg in pretrain.items()}
    finetune = experiment.finetune
    if data.get("finetune") is not None:
        finetune = _stage(finetune, data["finetune"], "finetune")
    return replace(experiment, pretrain=pretrain, finetune=finetune)


def recipe_yaml(experiment: Experiment) -> str:
    """The experiment's recipe in the same format ``--config`` reads."""
    pretrain = (
        asdict(experiment.pretrain)
        if isinstance(experiment.pretrain, StageConfig)
        else {k: asdict(v) for k, v in experiment.pretrain.items()}
    )
    return yaml.safe_dump({"pretrain": pretrain, "finetune": asdict(experiment.finetune)}, sort_keys=False)
