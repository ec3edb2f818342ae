"""Every executor gives the same results; a killed worker's job runs again; resume works with each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from i2m2.cli import main
from i2m2.orchestration import comparison

pytestmark = pytest.mark.slow

# A small comparison with a stage-2 dependency: the products start from the experts trained alone.
ARGS = ["run", "synthetic", "--regimes", "both", "--n_train", "200", "--n_val", "100", "--n_test", "200"]
ARGS += ["--seeds", "1", "--max_epochs", "2", "--threads", "1"]
ARGS += ["--methods", "unimodal:m0", "unimodal:m1", "intra", "inter", "i2m2"]

# An experiment whose data loading kills its worker process (kill -9) the first time any job loads it.
KILLER = """
import os, signal
from pathlib import Path
from i2m2.experiments.synthetic import synthetic

def killer(marker: str = ""):
    experiment = synthetic(n_train=200, n_val=100, n_test=200, regimes=["both"])
    load = experiment.load_data

    def load_once_killed(group, data_dir, seed):
        if marker and not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return load(group, data_dir, seed)

    experiment.load_data = load_once_killed
    return experiment
"""


def metrics(run: Path) -> list[tuple[str, str, dict]]:
    rows = json.loads((run / "results.json").read_text())["rows"]
    return [(r["method"], r["group"], r["metrics"]) for r in rows]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("executor", [["--executor", "processes", "--workers", "2"], ["--executor", "ray"]])
def test_every_executor_gives_the_table_of_local(executor, local_run, tmp_path):
    out = tmp_path / "run"
    assert main([*ARGS, *executor, "--out", str(out)]) == 0
    assert metrics(out) == metrics(local_run)  # bit-identical on CPU
    records = [json.loads(p.read_text()) for p in (out / "jobs").glob("*.json")]
    assert len({r["ran_on"]["pid"] for r in records}) >= 1 and all(r["ran_on"]["host"] for r in records)
    import os

    assert all(r["ran_on"]["pid"] != os.getpid() for r in records)  # the jobs ran in workers


@pytest.mark.parametrize("executor", [["--executor", "processes", "--workers", "2"], ["--executor", "ray"]])
def test_a_killed_worker_s_job_runs_again_with_the_same_results(executor, tmp_path, capsys):
    source = tmp_path / "killer.py"
    source.write_text(KILLER)
    common = ["run", f"{source}:killer", "--seeds", "1", "--max_epochs", "2", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "calm")]) == 0  # no marker: nothing is killed
    marker = tmp_path / "killed-once"
    capsys.readouterr()
    argv = [*common, *executor, "--marker", str(marker), "--out", str(tmp_path / "killed")]
    assert main(argv) == 0
    assert marker.exists()  # a worker was killed with SIGKILL mid-job ...
    if executor[1] == "processes":
        assert "its worker died" in capsys.readouterr().err  # ... said so, and its job ran again
    assert metrics(tmp_path / "killed") == metrics(tmp_path / "calm")


def test_resume_continues_a_parallel_run(local_run, tmp_path):
    out = tmp_path / "run"
    parallel = ["--executor", "processes", "--workers", "2", "--out", str(out)]
    first = [a for a in ARGS if a not in ("intra", "inter", "i2m2")]
    assert main([*first, *parallel]) == 0  # an earlier invocation finished the experts only
    done = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.json")}
    assert main([*ARGS, *parallel, "--resume"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "jobs").glob("*.json") if p.name in done} == done
    assert metrics(out) == metrics(local_run)


def test_only_the_driver_writes_the_run_folder(tmp_path, monkeypatch):
    """A job is told nothing about the run folder: no path in its spec lies inside it."""
    seen = []
    real = comparison.ProcessExecutor

    class Watching(real):  # type: ignore[misc, valid-type]
        def submit(self, spec):  # type: ignore[no-untyped-def]
            seen.append(spec)
            return super().submit(spec)

    monkeypatch.setattr(comparison, "ProcessExecutor", Watching)
    out = tmp_path / "run"
    assert main([*ARGS, "--executor", "processes", "--workers", "2", "--out", str(out)]) == 0
    assert len(seen) == 5
    for spec in seen:
        paths = [spec.scratch, spec.data_dir, *[w for w in spec.init_from.values() if isinstance(w, Path)]]
        assert not any(p is not None and out.resolve() in Path(p).resolve().parents for p in paths)
        assert all(isinstance(w, dict) for w in spec.init_from.values())  # weights travel, not paths


def test_a_python_experiment_object_needs_a_reference_for_other_processes(tmp_path):
    from i2m2 import run_experiment
    from i2m2.errors import UserError
    from i2m2.experiments.synthetic import synthetic

    with pytest.raises(UserError, match="rebuild the experiment from its reference"):
        run_experiment(synthetic(regimes=["both"]), tmp_path / "run", executor="processes", seeds=1)
    from i2m2.catalog import ExperimentRef

    ref = ExperimentRef.of("synthetic", regimes=["both"], n_train=200, n_val=100, n_test=200)
    rows = run_experiment(ref, tmp_path / "ok", executor="processes", workers=2, seeds=1, max_epochs=1)
    assert {r["method"] for r in rows} == {"unimodal:m0", "unimodal:m1", "intra", "inter", "i2m2"}


def test_sigterm_stops_a_parallel_run_keeping_finished_jobs_and_resume_finishes_it(local_run, tmp_path):
    """SIGTERM on the driver stops the workers' jobs, keeps the finished ones, exits 143 with the resume
    hint; --resume (here on one process) finishes the table of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    script = str(Path(sys.executable).with_name("i2m2"))
    argv = [script, *ARGS, "--executor", "processes", "--workers", "2", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "true"}
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not any((out / "jobs").glob("*.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before the signal"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "stopped by SIGTERM" in err and "--resume" in err
    kept = len(list((out / "jobs").glob("*.json")))
    assert 1 <= kept < 5 and not (out / "results.json").exists()
    assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    assert metrics(out) == metrics(local_run)
