"""Load pickles of plain data (dicts of numpy arrays) without letting the file run code.

``pickle.load`` calls whatever callables the file names, so a crafted file can run ``os.system``. The
unpickler here resolves only the few builtin and numpy names that a pickled dict of arrays needs (under
numpy 1.x and 2.x module paths, pickle protocols 0-5) and refuses every other name with a
:class:`DataError` naming it and the file, before anything is called. ``bytes(n)`` and
``bytearray(n)`` may not allocate more than the file holds (at least :data:`MIN_ALLOCATION`): a 40-byte
file cannot ask for a terabyte of memory.
"""

from __future__ import annotations

import codecs
import pickle
import warnings
from pathlib import Path
from typing import IO, Any

from i2m2.errors import DataError

_BUILTINS = (
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "int",
    "float",
    "complex",
    "bool",
    "str",
    "bytes",
    "bytearray",
)
_NUMPY = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"),
}
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    _NUMPY
    | {("builtins", n) for n in _BUILTINS}
    | {("__builtin__", n) for n in _BUILTINS}  # Python 2 pickles
    | {("collections", "OrderedDict"), ("_codecs", "encode")}
)


MIN_ALLOCATION = 1 << 20  # bytes a constructor may allocate even from a tiny file


def _capped(make: Any, limit: int, what: str) -> Any:
    """``make`` (bytes or bytearray) refusing to allocate more than ``limit`` bytes."""

    def call(*args: Any, **kwargs: Any) -> Any:
        size = _requested_bytes(args)
        if size > limit:
            raise pickle.UnpicklingError(f"{what} of {size} bytes exceeds the limit of {limit} for this file")
        return make(*args, **kwargs)

    return call


def _requested_bytes(args: tuple[Any, ...]) -> int:
    """The size ``bytes(n)``/``bytearray(n)`` would allocate (their other forms copy what the file holds)."""
    first = args[0] if args else 0
    return first if isinstance(first, int) and not isinstance(first, bool) else 0


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to its harmless latin-1 form."""
    if codecs.lookup(encoding).name not in ("latin-1", "iso8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, encoding)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in :data:`ALLOWED`."""

    def __init__(self, file: IO[bytes], source: str, limit: int = MIN_ALLOCATION) -> None:
        super().__init__(file, encoding="latin1")  # latin1: numpy arrays pickled under Python 2
        self.source = source
        self.limit = max(limit, MIN_ALLOCATION)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise DataError(
                f"{self.source}: refusing to load '{module}.{name}': this pickle may only hold builtin "
                "containers and numpy arrays (loading other objects could run code)"
            )
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        with warnings.catch_warnings():  # numpy 2 warns when numpy.core.* is imported
            warnings.simplefilter("ignore", DeprecationWarning)
            found = super().find_class(module, name)
        if name in ("bytes", "bytearray"):
            return _capped(found, self.limit, f"{module}.{name}")
        return found


def safe_load_pickle(path: Path) -> Any:
    """Unpickle ``path`` admitting only builtin containers/scalars and numpy arrays/dtypes/scalars.

    Raises:
        DataError: the file is missing, truncated or corrupt, or names anything outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a pickle)")
    try:
        with path.open("rb") as f:
            return SafeUnpickler(f, str(path), limit=path.stat().st_size).load()
    except DataError:
        raise
    except Exception as err:  # truncated or corrupt: EOFError, UnpicklingError, ValueError, ...
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err
