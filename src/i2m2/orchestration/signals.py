"""Stop a run cleanly on SIGINT or SIGTERM: what is finished stays on disk and ``--resume`` continues.

Lightning turns a ``KeyboardInterrupt`` inside ``fit`` into ``sys.exit(1)`` and only notes a SIGTERM, so
the handlers here raise :class:`~i2m2.errors.RunInterrupted` instead: Lightning tears the Trainer down and
re-raises it, the job in progress leaves no record (it reruns on ``--resume``; every file is written
atomically, the job record last), and the command line reports one line and exits 130 or 143.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from i2m2.errors import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals(hint: str) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted` (once) carrying ``hint``."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return
    raised: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if raised:  # a second signal while unwinding: the first one is already stopping the run
            return
        raised.append(signum)
        raise RunInterrupted(signum, hint)

    previous: dict[int, Any] = {n: signal.getsignal(n) for n in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum_, old in previous.items():
            signal.signal(signum_, old if old is not None else signal.SIG_DFL)
