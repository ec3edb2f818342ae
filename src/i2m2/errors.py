"""Errors the command line reports as one line (exit status 2) instead of a traceback."""


class UserError(ValueError):
    """Bad input from the user: a missing or malformed file, an unknown name, an invalid option."""


class DataError(UserError):
    """A data file is missing, corrupt, or not in the expected format; the message names the file."""
