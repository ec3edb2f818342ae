"""How to run a comparison: seeds, methods, fusions, stage-2 variants, resume and the Trainer's arguments.

``i2m2 run``'s options are generated from this dataclass (jsonargparse reads its fields and the ``Args:``
below), so the command line, ``--config`` files and Python take the same names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from i2m2.errors import UserError
from i2m2.training.trainer_options import check_trainer_options


@dataclass
class RunOptions:
    """How to run a comparison (the experiment says what to run).

    Args:
        seeds: the number of seeds; seed k gives one full comparison (weights, batch order, sampling).
        first_seed: the first seed, so that seeds ``first_seed .. first_seed + seeds - 1`` run (split one
            table's seeds over several machines; seed k is the same job wherever it runs).
        methods: rows to produce, e.g. ``unimodal:image intra inter i2m2`` (default: the experiment's
            ``default_methods``, else all); products also run the stage-1 jobs they start from.
        fusion: the inter experts to compare, of the experiment's fusions (default: the experiment's).
        data_dir: the dataset folder, for experiments that read files.
        max_epochs: overrides every stage's epochs (quick looks, smoke tests).
        from_scratch: train intra and I2M2 jointly from random initialization (the paper's Table 5).
        prior_correction: products of K experts use the exact Eq. (3), removing K-1 copies of the
            training-label prior (off by default, as in the authors' code).
        all_subsets: one inter expert per subset of two or more modalities (paper Section 5; M >= 3).
        resume: skip jobs already finished in the run folder.
        num_workers: DataLoader worker processes per job (for data read lazily from disk).
        executor: where jobs run: ``local`` (one after another in this process), ``processes`` (local
            worker processes) or ``ray`` (Ray tasks; ``pip install "i2m2[ray]"``). Every executor gives the
            same results; a stage-2 job starts when the experts it loads have finished.
        workers: worker processes of ``processes`` (default: one per GPU when ``gpus_per_job`` > 0, else
            one per core), each with its share of the CPU threads.
        ray_address: an existing Ray cluster (``ray start --head`` prints it); default: a local Ray.
        cpus_per_job: CPUs Ray reserves per job.
        gpus_per_job: GPUs per job (Ray: 0.25 packs four small jobs onto one GPU; processes: > 0 gives each
            worker its own GPU).
        trainer: any ``lightning.pytorch.Trainer`` arguments (devices, strategy, num_nodes, precision,
            logger, accumulate_grad_batches, deterministic, ...); the recipe sets epochs and clipping.
        experiment_options: the experiment factory's options, recorded in run.json (``--resume`` checks
            them).
    """

    seeds: int = 3
    first_seed: int = 0
    methods: list[str] | None = None
    fusion: list[str] | None = None
    data_dir: Path | None = None
    max_epochs: int | None = None
    from_scratch: bool = False
    prior_correction: bool = False
    all_subsets: bool = False
    resume: bool = False
    num_workers: int = 0
    executor: Literal["local", "processes", "ray"] = "local"
    workers: int | None = None
    ray_address: str | None = None
    cpus_per_job: float = 1.0
    gpus_per_job: float = 0.0
    trainer: dict[str, Any] = field(default_factory=dict)
    experiment_options: dict[str, Any] | None = None  # the factory's options, recorded in run.json

    @property
    def seed_list(self) -> list[int]:
        """The seeds this run trains, in order."""
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise UserError(f"--seeds: expected an integer >= 1, got {self.seeds}")
        if self.first_seed < 0:
            raise UserError(f"--first_seed: expected an integer >= 0, got {self.first_seed}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UserError(f"--max_epochs: expected an integer >= 1, got {self.max_epochs}")
        if self.num_workers < 0:
            raise UserError(f"--num_workers: expected an integer >= 0, got {self.num_workers}")
        self.trainer = check_trainer_options(self.trainer)
        if self.executor not in ("local", "processes", "ray"):
            raise UserError(f"--executor: expected local, processes or ray, got {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"--workers: expected an integer >= 1, got {self.workers}")
        if not self.cpus_per_job > 0 or not self.gpus_per_job >= 0:
            raise UserError(
                f"--cpus_per_job / --gpus_per_job: expected > 0 and >= 0, got {self.cpus_per_job} and "
                f"{self.gpus_per_job}"
            )
        if self.executor != "local" and int(self.trainer.get("num_nodes", 1)) > 1:
            raise UserError(
                "--executor: multi-node DDP (--trainer.num_nodes) runs one job at a time; use local"
            )
