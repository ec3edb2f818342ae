"""Where ``i2m2 analyze`` writes: its own folder, never over files a user keeps there.

``RUN_DIR/analysis`` belongs to i2m2, and a new analysis replaces what an earlier one wrote there. A
folder given with ``--out`` may already hold only what ``i2m2 analyze`` wrote into it earlier. Those
file names are listed in a small record, :data:`RECORD`, written into the folder before the files, so
an analysis stopped halfway (a full disk) still leaves a folder the next analysis may rewrite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from i2m2.atomic import atomic_write_text
from i2m2.errors import UserError

RECORD = ".i2m2-analysis.json"
SHOWN = 5  # files named when --out is refused
# atomic_write's temp file for NAME, which an analysis stopped halfway leaves: .NAME.XXXXXXXX.tmp
TEMP = re.compile(r"^\.(.+)\.[A-Za-z0-9_]{8}\.tmp$")


def claim_out_folder(target: Path, names: Iterable[str], default: Path) -> None:
    """Check that the analysis may write ``names`` into ``target``, then record them there.

    Call before writing any of them. ``default`` (``RUN_DIR/analysis``) is i2m2's own and always
    accepted; another folder is refused when it holds anything that no earlier analysis wrote.

    Raises:
        UserError: ``target`` is a file, or holds files ``i2m2 analyze`` did not write (naming some).
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target}: exists and is not a folder")
    ours = _written_before(target)
    if target.is_dir() and target.resolve() != Path(default).resolve():
        foreign = sorted(
            p.name + ("/" if p.is_dir() else "") for p in target.iterdir() if not _ours(p.name, ours)
        )
        if foreign:
            listed = ", ".join(foreign[:SHOWN]) + (", ..." if len(foreign) > SHOWN else "")
            raise UserError(
                f"--out {target}: holds files i2m2 analyze did not write ({listed}); choose a new or empty "
                "folder, or one an earlier analysis wrote"
            )
    files = sorted({n for n in ours if (target / n).exists()} | set(names))
    record = {"written_by": "i2m2 analyze", "files": files}
    atomic_write_text(target / RECORD, json.dumps(record, indent=2) + "\n")


def _ours(name: str, ours: set[str]) -> bool:
    temp = TEMP.match(name)
    return name == RECORD or name in ours or (temp is not None and temp.group(1) in ours | {RECORD})


def _written_before(target: Path) -> set[str]:
    """The names an earlier analysis recorded in ``target`` (none when the record is absent or unreadable)."""
    try:
        record = json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return set()
    files = record.get("files") if isinstance(record, dict) else None
    return {n for n in files if isinstance(n, str)} if isinstance(files, list) else set()
