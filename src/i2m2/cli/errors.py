"""How the command line reports bad input: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

from jsonargparse import ArgumentError

from i2m2.errors import UserError

# Errors a user's input can cause. Anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, ArgumentError)


def one_line(err: BaseException) -> str:
    """The error as one line; jsonargparse's multi-line type errors are cut to what names the key."""
    text = str(err)
    if isinstance(err, ArgumentError):
        text = re.sub(r"Does not validate against any of the Union subtypes.*?Errors:", "", text, flags=re.S)
        text = re.sub(r"\s*- Expected a? ?<class 'NoneType'>", "", text)
        text = re.sub(r"Given value type: <class '\w+'>", "", text)
        text = re.sub(r"Subtypes: \[.*?\]", "", text)
    return " ".join(text.split())


def report(prog: str, run: Callable[[], int]) -> int:
    """Run a command; a user error becomes one line and exit status 2 (``I2M2_DEBUG=1``: the traceback)."""
    try:
        return run()
    except USER_ERRORS as err:
        if os.environ.get("I2M2_DEBUG"):
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished jobs are kept, continue with --resume", file=sys.stderr)
        return 130
