"""Where one job's fixed time goes: exclusive wall seconds per part, from timers patched onto Lightning's and
i2m2's functions for the duration of one job (no cProfile: its per-call cost would inflate exactly the
small Python calls being measured).

Each timer counts its own time minus that of any timed call inside it, so the parts add up to the job.
Used by ``benchmarks/small_jobs.py`` (part "profile"); ``python benchmarks/job_profile.py`` prints one
demo job's table.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable, Iterator
from typing import Any

# (module, attribute path, part): the part is a name, or a function of the call's arguments naming it.
Part = str | Callable[..., str]


def _evaluation(loop: Any, *args: Any, **kwargs: Any) -> str:
    return "test: loop" if loop.trainer.testing else "val: loop (per epoch)"


TIMED: list[tuple[str, str, Part]] = [
    ("i2m2.orchestration.job", "run_job", "job: data, model, result"),
    ("lightning.pytorch", "Trainer.__init__", "Trainer construction"),
    ("lightning.pytorch", "Trainer.fit", "fit: setup and teardown"),
    ("lightning.pytorch", "Trainer.test", "test: setup and teardown"),
    ("lightning.pytorch.loops.fit_loop", "_FitLoop.advance", "train: epoch loop"),
    (
        "lightning.pytorch.loops.training_epoch_loop",
        "_TrainingEpochLoop.advance",
        "train: Lightning per step",
    ),
    ("lightning.pytorch.loops.training_epoch_loop", "_TrainingEpochLoop.on_advance_end", "train: epoch loop"),
    ("i2m2.training.lightning_module", "MethodModule.training_step", "train: model (forward, loss)"),
    ("lightning.pytorch.plugins.precision.precision", "Precision.backward", "train: model (backward)"),
    ("torch.optim", "Adam.step", "train: model (optimizer)"),
    ("torch.optim", "SGD.step", "train: model (optimizer)"),
    ("torch.optim", "AdamW.step", "train: model (optimizer)"),
    ("lightning.pytorch.loops.evaluation_loop", "_EvaluationLoop.run", _evaluation),
    ("i2m2.training.lightning_module", "MethodModule.validation_step", "val: model"),
    ("i2m2.training.lightning_module", "MethodModule.on_validation_epoch_end", "val: metrics and logging"),
    ("i2m2.training.lightning_module", "MethodModule.test_step", "test: model and predictions"),
    ("i2m2.training.lightning_module", "MethodModule.on_test_epoch_end", "test: metrics and logging"),
    ("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint._save_checkpoint", "checkpoint writes"),
    (
        "lightning.pytorch.callbacks.model_checkpoint",
        "ModelCheckpoint._remove_checkpoint",
        "checkpoint writes",
    ),
    (
        "lightning.pytorch.trainer.connectors.checkpoint_connector",
        "_CheckpointConnector.restore",
        "test: ckpt load",
    ),
    ("lightning.pytorch.loggers.csv_logs", "CSVLogger.log_metrics", "CSV logging"),
    ("lightning.pytorch.loggers.csv_logs", "CSVLogger.save", "CSV logging"),
    (
        "lightning.pytorch.callbacks.early_stopping",
        "EarlyStopping._run_early_stopping_check",
        "early stopping",
    ),
    ("i2m2.training.fit", "gather_predictions", "test: gather predictions"),
]
# Targets that exist in some versions of i2m2 only (the profile runs on the code before and after changes).
OPTIONAL = {
    "i2m2.training.fit:BestCheckpoint._save_checkpoint": "best checkpoint",
    "i2m2.training.fit:BestCheckpoint.write": "best checkpoint",
    "i2m2.training.fit:Curve.write": "CSV logging",
}


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list[Any]] = []  # [part, started, seconds of timed calls inside]

    def wrap(self, function: Callable[..., Any], part: Part) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = part if isinstance(part, str) else part(*args, **kwargs)
            frame = [name, time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[1]
                self.seconds[name] = self.seconds.get(name, 0.0) + spent - frame[2]
                self.calls[name] = self.calls.get(name, 0) + 1
                if self._stack:
                    self._stack[-1][2] += spent

        return timed


def _resolve(module: str, path: str) -> tuple[Any, str] | None:
    try:
        owner: Any = importlib.import_module(module)
    except ImportError:
        return None
    *parents, attribute = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None:
            return None
    return (owner, attribute) if hasattr(owner, attribute) else None


@contextlib.contextmanager
def timed_parts() -> Iterator[Timers]:
    """Patch every timed function for the duration of the block; the timers hold the seconds."""
    timers = Timers()
    targets = [*TIMED, *((k.split(":")[0], k.split(":")[1], v) for k, v in OPTIONAL.items())]
    patched: list[tuple[Any, str, Any]] = []
    seen: set[tuple[int, str]] = set()
    for module, path, part in targets:
        found = _resolve(module, path)
        if found is None or (id(found[0]), found[1]) in seen:
            continue
        owner, attribute = found
        seen.add((id(owner), attribute))
        original = owner.__dict__.get(attribute, getattr(owner, attribute))
        patched.append((owner, attribute, original))
        setattr(owner, attribute, timers.wrap(getattr(owner, attribute), part))
    try:
        yield timers
    finally:
        for owner, attribute, original in reversed(patched):
            setattr(owner, attribute, original)


def profile(run: Callable[[], Any]) -> dict[str, Any]:
    """Run ``run()`` (one job) with the timers on: seconds and calls per part, and the whole."""
    with timed_parts() as timers:
        started = time.perf_counter()
        run()
        whole = time.perf_counter() - started
    parts = dict(sorted(timers.seconds.items(), key=lambda kv: -kv[1]))
    parts["other (outside the timed parts)"] = whole - sum(parts.values())
    return {
        "whole_s": round(whole, 4),
        "parts_s": {k: round(v, 4) for k, v in parts.items()},
        "calls": timers.calls,
    }


def demo_job(method: str = "unimodal:m0", epochs: int | None = None) -> Callable[[], Any]:
    """One of the demo's jobs ('both' regime, seed 0) as ``i2m2 run`` runs it, in this process."""
    from i2m2.catalog import ExperimentRef
    from i2m2.orchestration.job import JobSpec, run_job

    experiment = ExperimentRef.of("synthetic", regimes=["both"]).build()
    stage = experiment.stage_config(method, max_epochs=epochs)
    return lambda: run_job(JobSpec(experiment=experiment, method=method, group="both", seed=0, stage=stage))


def table(profiles: dict[str, dict[str, Any]]) -> list[str]:
    """A markdown table: one column per profile, parts as rows (ms, share of the whole)."""
    names = list(profiles)
    parts: list[str] = []
    for p in profiles.values():
        parts += [k for k in p["parts_s"] if k not in parts]
    lines = ["| part | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for part in parts:
        cells = []
        for p in profiles.values():
            s = p["parts_s"].get(part)
            cells.append("" if s is None else f"{s * 1000:.0f} ms ({s / p['whole_s']:.0%})")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    lines.append(
        "| **whole** | " + " | ".join(f"{p['whole_s'] * 1000:.0f} ms" for p in profiles.values()) + " |"
    )
    return lines


if __name__ == "__main__":
    import torch

    from i2m2.training.fit import quiet_lightning

    torch.set_num_threads(1)
    quiet_lightning()
    job = demo_job()
    job()  # warm-up: imports, first-call caches
    print("\n".join(table({"unimodal:m0": profile(job)})))
