"""Whether a data folder holds a simulated stand-in (the phantom, nlvr2-shapes), so results say so.

Both stand-ins write a ``README.txt`` whose text says ``SIMULATED`` (and a real dataset has no such file
from i2m2); charts and tables of runs on them are then titled "simulated data".
"""

from __future__ import annotations

from pathlib import Path


def is_simulated(folder: Path | str | None) -> bool:
    """True when ``folder`` holds a README.txt written by one of i2m2's simulated stand-ins."""
    if folder is None:
        return False
    readme = Path(folder) / "README.txt"
    try:
        return "SIMULATED" in readme.read_text(errors="replace")[:2000]
    except OSError:
        return False
