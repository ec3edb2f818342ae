"""Worker processes start with a job's modules already imported; the demo uses every core by default."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from i2m2.cli.main import demo_argv, executor_given
from i2m2.orchestration.workers import WORKER_PRELOAD, usable_cores, worker_context

# Evaluated in the worker by the builtin eval: nothing of this test module is imported there.
LOADED = "sorted(m for m in {modules!r} if m in __import__('sys').modules)"


def test_a_new_worker_has_the_job_modules_imported_before_its_first_job():
    context = worker_context()
    assert context.get_start_method() == "forkserver"  # Linux and macOS; Windows spawns
    modules = [*WORKER_PRELOAD, "lightning.pytorch"]
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        loaded = pool.submit(eval, LOADED.format(modules=modules)).result()
    assert loaded == sorted(modules)


def test_the_demo_runs_its_jobs_side_by_side_only_where_there_are_cores_and_no_executor_was_named():
    assert demo_argv([], 2) == ["--executor", "processes"]
    assert demo_argv(["--out", "d"], 16) == ["--executor", "processes", "--out", "d"]
    assert demo_argv([], 1) == []
    assert demo_argv(["--executor", "local"], 4) == ["--executor", "local"]
    assert demo_argv(["--executor=ray"], 4) == ["--executor=ray"]
    assert demo_argv(["--help"], 4) == ["--help"]
    assert demo_argv(["--print_config"], 4) == ["--print_config"]


def test_the_executor_is_read_from_either_spelling():
    assert executor_given(["--seeds", "2", "--executor", "processes"]) == "processes"
    assert executor_given(["--executor=local"]) == "local"
    assert executor_given(["--executor"]) is None
    assert executor_given([]) is None
    assert usable_cores() >= 1
