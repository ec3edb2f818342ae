"""Errors the command line reports as one line (exit status 2) instead of a traceback."""


class UserError(ValueError):
    """Bad input from the user: a missing or malformed file, an unknown name, an invalid option."""


class DataError(UserError):
    """A data file is missing, corrupt, or not in the expected format; the message names the file."""


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM stopped a run; finished jobs are on disk, ``--resume`` continues.

    A :class:`BaseException` (like :class:`KeyboardInterrupt`), so no ``except Exception`` swallows it, and
    not a ``KeyboardInterrupt``, which Lightning turns into ``sys.exit(1)``.
    """

    def __init__(self, signum: int, hint: str = "finished jobs are kept; continue with --resume") -> None:
        super().__init__(signum, hint)
        self.signum = signum
        self.hint = hint
