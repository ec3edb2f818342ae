"""Where the jobs of a comparison run: in this process, in local worker processes, or as Ray tasks.

Every executor takes a :class:`~i2m2.orchestration.job.JobSpec` and hands back a
:class:`concurrent.futures.Future` of its :class:`~i2m2.orchestration.job.JobResult`, so the driver waits on
all of them the same way. A worker that dies mid-job (``kill -9``, out of memory) makes that job run again,
up to :data:`RETRIES` times; an error of the job itself (bad data) is not retried. Ray is an optional extra
(``pip install "i2m2[ray]"``), imported only by :class:`RayExecutor`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from abc import ABC, abstractmethod
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from i2m2.errors import UserError
from i2m2.orchestration.job import JobResult, JobSpec, run_job
from i2m2.orchestration.workers import usable_cores, worker_context

RETRIES = 2  # runs again of a job whose worker died


class WorkerDied(Exception):
    """The process running a job was killed; the job may run again."""


class Executor(ABC):
    """Runs jobs; ``slots`` is how many may be in flight at once."""

    name: str
    slots: int

    @abstractmethod
    def submit(self, spec: JobSpec) -> Future[JobResult]:
        """Start a job; its future fails with :class:`WorkerDied` when its worker was killed."""

    def cancel(self) -> None:  # noqa: B027 - nothing to stop where jobs run in this process
        """Stop every running job (SIGINT/SIGTERM on the driver): their results are not kept."""

    def close(self) -> None:  # noqa: B027
        """Release the workers."""


class LocalExecutor(Executor):
    """Each job in this process, one after another (the default, and what multi-process DDP needs)."""

    name = "local"
    slots = 1

    def submit(self, spec: JobSpec) -> Future[JobResult]:
        future: Future[JobResult] = Future()
        try:
            future.set_result(run_job(spec))
        except Exception as err:  # a signal (RunInterrupted, KeyboardInterrupt) goes straight up
            future.set_exception(err)
        return future


def _start_worker(threads: int, gpus: int, counter: Any) -> None:
    """A worker's share of the machine: ``threads`` torch threads, or one GPU of ``gpus`` in turn."""
    if gpus > 0:
        with counter.get_lock():
            index, counter.value = counter.value, counter.value + 1
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    import torch

    from i2m2.training.fit import quiet_lightning

    torch.set_num_threads(threads)
    quiet_lightning()


class ProcessExecutor(Executor):
    """``workers`` local processes, each with its share of the CPU threads or its own GPU.

    A killed worker breaks Python's process pool; the pool is then rebuilt and the jobs it was running
    fail with :class:`WorkerDied`, so the driver runs them again.
    """

    name = "processes"

    def __init__(self, workers: int, threads: int | None = None, gpus: int = 0) -> None:
        self.slots = workers
        # As i2m2 run's own default: leave a core free, or OpenMP's busy-waiting threads collapse as soon as
        # anything else runs (measured in docs/performance.md); the rest is shared among the workers.
        self.threads = threads or max(1, (usable_cores() - 1) // workers)
        self.gpus = gpus
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # A GPU worker spawns: a fork server that had touched CUDA while importing would poison its forks.
        context = multiprocessing.get_context("spawn") if self.gpus else worker_context()
        counter = context.Value("i", 0)
        return ProcessPoolExecutor(
            self.slots,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.threads, self.gpus, counter),
        )

    def submit(self, spec: JobSpec) -> Future[JobResult]:
        outer: Future[JobResult] = Future()
        try:
            inner = self._pool.submit(run_job, spec)
        except BrokenProcessPool:
            self._pool = self._new_pool()
            inner = self._pool.submit(run_job, spec)
        inner.add_done_callback(lambda done: _forward(done, outer, self))
        return outer

    def broken(self) -> None:
        """Replace a pool whose worker was killed (once, however many of its jobs report it)."""
        if getattr(self._pool, "_broken", False):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()

    def cancel(self) -> None:
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _forward(done: Future[JobResult], outer: Future[JobResult], executor: ProcessExecutor) -> None:
    error = done.exception()
    if error is None:
        outer.set_result(done.result())
    elif isinstance(error, BrokenProcessPool):
        executor.broken()
        outer.set_exception(WorkerDied(str(error)))
    else:
        outer.set_exception(error)


class RayExecutor(Executor):
    """The jobs as Ray tasks on a local Ray instance or an existing cluster (``address``).

    ``cpus_per_job`` and ``gpus_per_job`` are Ray's resource requests: ``gpus_per_job=0.25`` packs four
    small jobs onto one GPU. Ray itself runs a task again when its worker dies.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, cpus_per_job: float = 1.0, gpus_per_job: float = 0.0
    ) -> None:
        try:
            import ray
        except ImportError as err:
            raise UserError('--executor ray: Ray is not installed; pip install "i2m2[ray]"') from err
        self.ray = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise UserError(f"--ray_address {address}: cannot connect to a Ray cluster ({err})") from err
        total = ray.cluster_resources().get("CPU", 1)
        self.slots = max(1, int(total // max(cpus_per_job, 1e-3)))
        self._task = ray.remote(_ray_job).options(
            num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=RETRIES, retry_exceptions=False
        )
        self._refs: list[Any] = []

    def submit(self, spec: JobSpec) -> Future[JobResult]:
        ref = self._task.remote(spec)
        self._refs.append(ref)
        outer: Future[JobResult] = Future()
        ref.future().add_done_callback(lambda done: _unwrap(done, outer, self.ray))
        return outer

    def cancel(self) -> None:
        for ref in self._refs:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        self._refs.clear()


def _ray_job(spec: JobSpec) -> JobResult:
    import torch

    from i2m2.training.fit import quiet_lightning

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))  # Ray sets it per task
    quiet_lightning()
    return run_job(spec)


def _unwrap(done: Future[JobResult], outer: Future[JobResult], ray: Any) -> None:
    error = done.exception()
    if error is None:
        outer.set_result(done.result())
    elif isinstance(error, ray.exceptions.RayTaskError):
        outer.set_exception(error.cause if isinstance(error.cause, BaseException) else error)
    elif isinstance(error, ray.exceptions.WorkerCrashedError | ray.exceptions.NodeDiedError):
        outer.set_exception(WorkerDied(str(error).splitlines()[0]))  # Ray's own retries are spent
    else:
        outer.set_exception(error)
