"""A job is a pure function: explicit inputs, every output returned, nothing written outside its scratch."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from i2m2.catalog import ExperimentRef
from i2m2.orchestration.job import JobResult, JobSpec, run_job

SYNTHETIC = ExperimentRef.of("synthetic", n_train=300, n_test=200)


def spec(method: str, **changes) -> JobSpec:
    experiment = SYNTHETIC.build()
    return JobSpec(
        experiment=SYNTHETIC,
        method=method,
        group="both",
        seed=0,
        stage=experiment.stage_config(method, max_epochs=3),
        **changes,
    )


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def test_a_job_returns_everything_and_writes_only_its_scratch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_job(spec("inter", scratch=tmp_path / "scratch"))
    assert {p.parts[0] for p in files_under(tmp_path)} <= {"scratch"}
    assert set(result.metrics) >= {"acc", "auroc", "loss"} and 1 <= result.epochs <= 3
    assert any(k.startswith("experts.inter.") for k in result.state_dict)
    assert result.curve.startswith("epoch,step") and "val/acc" in result.curve
    assert result.predictions is not None and result.predictions.log_probs.shape[0] == 200
    assert result.experts == {"inter": {"modalities": ["m0", "m1"], "handles_missing": False}}
    assert result.wall_time_s > 0 and {"setup", "train"} <= set(result.phases)
    assert result.record()["ran_on"]["pid"] > 0


def test_stage_two_starts_from_the_weights_it_is_given():
    experts = {m: run_job(spec(m)) for m in ("unimodal:m0", "unimodal:m1", "inter")}
    frozen = spec("i2m2", init_from={m: r.state_dict for m, r in experts.items()})
    frozen.stage = frozen.stage.__class__(**{**vars(frozen.stage), "lr": 1e-12, "max_epochs": 1})
    product = run_job(frozen)
    for result in experts.values():  # an lr of 1e-12 leaves every expert as stage 1 left it
        for key, value in result.state_dict.items():
            assert (product.state_dict[key] - value).abs().max() < 1e-6, key
    assert "mixture_acc" in product.metrics


def _in_another_process(job: JobSpec, queue) -> None:  # pragma: no cover - runs in the child
    import torch

    torch.set_num_threads(1)  # as the suite (conftest): the same kernels, the same bits
    result = run_job(job)
    queue.put((result.metrics, {k: v.numpy() for k, v in result.state_dict.items()}))


@pytest.mark.slow
def test_a_job_gives_the_same_answer_in_another_process():
    """The experiment is rebuilt from its reference where the job runs; on CPU the answer is bit-identical."""
    job = spec("unimodal:m1")
    here: JobResult = run_job(job)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_in_another_process, args=(job, queue))
    child.start()
    metrics, state = queue.get(timeout=240)
    child.join(timeout=60)
    assert metrics == here.metrics
    assert all((here.state_dict[k].numpy() == v).all() for k, v in state.items())
