"""What a tune leaves in DIR: ``tuned.yaml`` (a recipe ``i2m2 run --config`` reads as is), ``trials.csv``
(every trial of every method) and ``tuning.png`` (validation metric against each tuned value, per method).

All three are rewritten from the studies after each method, atomically, so an interrupted tune leaves
them readable and up to date.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import yaml

from i2m2.atomic import atomic_write, atomic_write_text
from i2m2.models.methods import STAGE2_METHODS, method_base
from i2m2.runs.folder import plain
from i2m2.tuning.space import expert_key

if TYPE_CHECKING:
    from i2m2.tuning.tune import Tuner, TuneResult

TUNED = "tuned.yaml"
TRIALS = "trials.csv"
CHART = "tuning.png"


def tuned_config(tuner: Tuner) -> dict[str, Any]:
    """The experiment's options and its recipe with every tuned method's best settings, as ``i2m2 run``'s
    ``--config`` keys."""
    experiment, run = tuner.experiment, tuner.run
    recipe = experiment.recipe
    experts = {n: _set(asdict(c)) for n, c in recipe.experts.items()}
    methods = {n: _set(asdict(c)) for n, c in recipe.finetune_methods.items()}
    for method, best in tuner.best.items():
        base = method_base(method)
        params = {k: int(v) if k == "batch_size" else float(v) for k, v in best.params.items()}
        if base in STAGE2_METHODS:
            methods[base] = methods.get(base, {}) | params
        else:
            key = expert_key(method)
            experts[key] = experts.get(key, {}) | params
    config: dict[str, Any] = dict(plain(run.experiment_options or {}))
    if run.data_dir is not None:
        config["data_dir"] = str(run.data_dir)
    if run.fusion:
        config["fusion"] = list(run.fusion)
    if run.max_epochs is not None:
        config["max_epochs"] = run.max_epochs
    config |= {
        "pretrain": asdict(recipe.pretrain),
        "finetune": asdict(recipe.finetune),
        "experts": experts,
        "finetune_methods": methods,
    }
    return plain(config)


def _varied(dims: dict[str, Any]) -> list[str]:
    """The settings a method's space varies (all of them when it varies none)."""
    varied = sorted(n for n, d in dims.items() if len(d.grid()) > 1 or d.values is None)
    return varied or sorted(dims)


def _set(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items() if v is not None}


def header(tuner: Tuner) -> str:
    """The tune's budget and winners, as YAML comments (``--config`` ignores them)."""
    experiment, tune, run = tuner.experiment, tuner.tune, tuner.run
    groups = [g for g in experiment.groups if g]
    lines = [
        f"# Tuned by i2m2 tune: experiment {experiment.name}; {tune.sampler} search, at most {tune.trials} "
        f"trials per method, pruner {tune.pruner}",
        f"# selected on validation {experiment.monitor} only (mean of the best epoch over seeds "
        f"{run.seed_list}{f' and groups {groups}' if groups else ''}); the test split was not read",
        f"# use: i2m2 run {tuner.reference.ref if tuner.reference else experiment.name} --config THIS_FILE",
    ]
    for method, best in tuner.best.items():
        shown = ", ".join(f"{k} {v:g}" for k, v in best.params.items())
        lines.append(
            f"#   {method}: {shown} -> val {experiment.monitor} {best.value:.4f} "
            f"(trial {best.trial} of {best.finished})"
        )
    return "\n".join(lines) + "\n"


def trial_rows(tuner: Tuner) -> list[dict[str, Any]]:
    """One row per trial of every tuned method (interrupted trials included, marked)."""
    rows: list[dict[str, Any]] = []
    names = sorted({n for m in tuner.studies for n in tuner.space.for_method(m)})
    for method, study in tuner.studies.items():
        for trial in study.get_trials(deepcopy=False):
            state = "interrupted" if trial.user_attrs.get("interrupted") else trial.state.name.lower()
            row: dict[str, Any] = {"method": method, "trial": trial.number, "state": state}
            row["value"] = "" if trial.value is None else trial.value
            row |= {n: trial.params.get(n, "") for n in names}
            row["epochs"] = trial.user_attrs.get("epochs", "")
            row["wall_time_s"] = trial.user_attrs.get("wall_time_s", "")
            row["error"] = trial.user_attrs.get("error", "")
            row["study"] = study.study_name
            rows.append(row)
    return rows


def write_reports(tuner: Tuner) -> TuneResult:
    from i2m2.tuning.tune import TuneResult

    out = tuner.out
    out.mkdir(parents=True, exist_ok=True)
    tuned = out / TUNED
    atomic_write_text(tuned, header(tuner) + yaml.safe_dump(tuned_config(tuner), sort_keys=False))
    rows = trial_rows(tuner)
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out / TRIALS, text.getvalue())
    chart = out / CHART if rows else None
    if chart is not None:
        draw_chart(tuner, rows, chart)
    return TuneResult(dict(tuner.best), tuned, out / TRIALS, chart, tuner.experiment.monitor)


def draw_chart(tuner: Tuner, rows: list[dict[str, Any]], path: Any) -> None:
    """Validation metric against each tuned value: one row of panels per method, one panel per setting.
    Finished trials are dots (the best a star), pruned ones hollow at their last epoch's value, failed ones
    crosses on the bottom edge."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = {m: _varied(tuner.space.for_method(m)) for m in methods}
    columns = max(len(n) for n in names.values()) or 1
    figure, axes = plt.subplots(
        len(methods), columns, figsize=(3.6 * columns, 2.6 * len(methods)), squeeze=False
    )
    metric = tuner.experiment.monitor
    for i, method in enumerate(methods):
        study = tuner.studies[method]
        trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("interrupted")]
        best = tuner.best.get(method)
        for j in range(columns):
            ax = axes[i][j]
            if j >= len(names[method]):
                ax.axis("off")
                continue
            name = names[method][j]
            dim = tuner.space.for_method(method)[name]
            for t in trials:
                x = t.params.get(name)
                if x is None:
                    continue
                state = t.state.name
                if state == "COMPLETE" and t.value is not None:
                    star = best is not None and t.number == best.trial
                    ax.plot(
                        x, t.value, "*" if star else "o", color="C3" if star else "C0", ms=11 if star else 5
                    )
                elif state == "PRUNED" and t.intermediate_values:
                    last = t.intermediate_values[max(t.intermediate_values)]
                    ax.plot(x, last, "o", mfc="none", color="gray", ms=5)
                elif state == "FAIL":  # on the bottom edge: it has no score
                    ax.plot(x, 0, "x", color="C1", ms=7, clip_on=False, transform=ax.get_xaxis_transform())
            grid = dim.grid()
            if grid[0] > 0 and (dim.log or grid[-1] >= 10 * grid[0]):
                ax.set_xscale("log")
            ax.set_xlabel(name)
            ax.set_ylabel(f"val {metric}" if j == 0 else "")
            ax.set_title(method, fontsize=9)
            ax.grid(alpha=0.3)
    figure.suptitle(
        f"{tuner.experiment.name}: validation {metric} per trial "
        "(dot finished, star best, hollow pruned, x diverged)",
        fontsize=10,
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
