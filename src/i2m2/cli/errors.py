"""How the command line reports bad input and faults: one line on stderr, exit status 2, no traceback.

Only errors a user's input or environment can cause become one line (:data:`USER_ERRORS`, Lightning's
``MisconfigurationException``, and :class:`OSError` for a full disk, a read-only or missing path); anything
else is a bug and keeps its traceback. ``I2M2_DEBUG=1`` shows the traceback of every error.
A run stopped by SIGINT or SIGTERM (:class:`~i2m2.errors.RunInterrupted`) says how to continue it and exits
with 128 + the signal's number (130, 143).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from jsonargparse import ArgumentError

from i2m2.errors import RunInterrupted, UserError

# Errors a user's input can cause. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, ArgumentError)
# OSErrors of the environment, not of the code: reported as one line naming the file.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "not a folder",
    errno.EISDIR: "is a folder",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
}
LIGHTNING_EXCEPTIONS = "lightning.fabric.utilities.exceptions"
# What to do after a full disk, by command: only a run (and the demo, a run) continues with --resume.
RESUME = "finished jobs are kept: free some space and continue with --resume"
FULL_DISK_HINTS = {
    "i2m2 run": RESUME,
    "i2m2 demo": RESUME,
    "i2m2 data": "free some space, delete the partly written --out folder and build again",
    "i2m2 analyze": "free some space and run i2m2 analyze again",
}
FULL_DISK_HINT = "free some space and try again"
# ... and after Ctrl-C outside a run's own signal handling.
INTERRUPTED_HINTS = {
    "i2m2 run": "finished jobs are kept, continue with --resume",
    "i2m2 demo": "finished jobs are kept, continue with --resume",
    "i2m2 data": "delete the partly written --out folder before building again",
}


def one_line(err: BaseException, prog: str = "") -> str:
    """The error as one line; jsonargparse's multi-line type errors are cut to what names the key.

    ``prog`` (``"i2m2 data"``) chooses what a full disk's message suggests: ``--resume`` only where the
    command has it.
    """
    text = str(err)
    if isinstance(err, ArgumentError) or "Does not validate against any of the Union subtypes" in text:
        text = re.sub(r"Does not validate against any of the Union subtypes.*?Errors:", "", text, flags=re.S)
        text = re.sub(r"\s*- Expected a? ?<class 'NoneType'>", "", text)
        text = re.sub(r"Subtypes: \[.*?\]", "", text)
        text = re.sub(r"Given value type: <class '[\w.]+'>", "", text)
        text = re.sub(r"Given value: Namespace\(.*", "", text, flags=re.S)
        text = re.sub(r"^\s*-\s*", "", text.strip())
    elif isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        resumable = FULL_DISK_HINTS.get(prog) == RESUME
        where = err.filename if err.filename is not None else "writing the run" if resumable else "writing"
        text = f"{where}: {ENVIRONMENT_ERRNOS[err.errno]}"
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            text += "; " + FULL_DISK_HINTS.get(prog, FULL_DISK_HINT)
    return " ".join(text.split()) or type(err).__name__


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is bad input or a fault of the environment rather than a bug."""
    if isinstance(err, USER_ERRORS):
        return True
    if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
        return True
    lightning = sys.modules.get(LIGHTNING_EXCEPTIONS)  # only raised once Lightning was imported
    misconfiguration = getattr(lightning, "MisconfigurationException", None)
    return misconfiguration is not None and isinstance(err, misconfiguration)


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block ends, then raise it: a KeyboardInterrupt inside an import (torch, numpy,
    scipy load for seconds) can leave a module half-initialised and end in a RecursionError instead of
    the one-line "interrupted"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def report(prog: str, run: Callable[[], int]) -> int:
    """Run a command; a user error becomes one line and exit status 2 (``I2M2_DEBUG=1``: the traceback)."""
    try:
        return run()
    except RunInterrupted as err:
        name = signal.Signals(err.signum).name
        print(f"{prog}: stopped by {name}; {err.hint}", file=sys.stderr, flush=True)
        return 128 + err.signum
    except KeyboardInterrupt:
        hint = INTERRUPTED_HINTS.get(prog)
        print(f"{prog}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as err:
        if os.environ.get("I2M2_DEBUG") or not is_user_error(err):
            raise
        print(f"{prog}: error: {one_line(err, prog)}", file=sys.stderr, flush=True)
        return 2
