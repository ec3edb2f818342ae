"""How local worker processes start: forked from a fork server that has already imported a job's modules.

Spawning a worker re-imports torch, Lightning and torchmetrics (about 3 s on a small CPU), which is more than
a small job takes. A fork server imports them once, never runs torch code itself (so no thread pool or
CUDA state is inherited), and forks each worker ready to run in milliseconds. This module stays light, so
that a command can start the server before its own heavy imports and the two import side by side.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.context import BaseContext

# What a worker imports before its first job.
WORKER_PRELOAD = ["i2m2.orchestration.job", "i2m2.training.fit"]


def worker_context() -> BaseContext:
    """The fork server's context with the job modules preloaded; spawn where there is no fork (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def warm_up_workers() -> None:
    """Start the fork server now, so that its imports run on another core while this process imports its
    own: call it first thing in a command that will start worker processes."""
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
