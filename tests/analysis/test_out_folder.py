"""``i2m2 analyze --out DIR`` never replaces a user's files; what analyze itself wrote, it rewrites."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from i2m2.analysis.out_folder import RECORD
from i2m2.analysis.report import analyze_run
from i2m2.cli import main
from i2m2.errors import UserError
from tests.helpers.analysis import write_run


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.mark.slow
def test_out_holding_user_files_is_refused_and_left_as_it_was(tmp_path: Path, capsys):
    root = write_run(tmp_path / "run")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my,table\n")
    (mine / "entropy.md").write_text("# my notes, named like an analysis\n")  # a name analyze writes
    (mine / "plots").mkdir()
    (mine / "plots" / "a.png").write_bytes(os.urandom(100))
    before, run_before = snapshot(mine), snapshot(root)
    assert main(["analyze", str(root), "--out", str(mine)]) == 2
    line = one_error_line(capsys)
    assert line == (
        f"i2m2 analyze: error: --out {mine}: holds files i2m2 analyze did not write (entropy.md, plots/, "
        "results.csv); choose a new or empty folder, or one an earlier analysis wrote"
    )
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == [
        "entropy.md",
        "plots",
        "results.csv",
    ]
    assert snapshot(root) == run_before and not (root / "analysis").exists()
    with pytest.raises(UserError, match=r"holds files i2m2 analyze did not write"):
        analyze_run(root, mine)
    assert snapshot(mine) == before


def test_out_may_be_a_file_never(tmp_path: Path, capsys):
    root = write_run(tmp_path / "run")
    (tmp_path / "a-file").write_text("mine")
    assert main(["analyze", str(root), "--out", str(tmp_path / "a-file")]) == 2
    assert one_error_line(capsys).endswith(f"--out {tmp_path / 'a-file'}: exists and is not a folder")
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.slow
def test_a_folder_analyze_wrote_is_rewritten_until_a_user_file_appears(tmp_path: Path, capsys):
    root = write_run(tmp_path / "run")
    out = tmp_path / "elsewhere"
    first = analyze_run(root, out)
    assert json.loads((out / RECORD).read_text())["files"] == sorted(p.name for p in first)
    original = (out / "entropy.csv").read_bytes()
    (out / "entropy.csv").write_text("stale\n")
    assert main(["analyze", str(root), "--out", str(out)]) == 0  # its own earlier files: replaced
    assert (out / "entropy.csv").read_bytes() == original
    capsys.readouterr()
    (out / "notes.txt").write_text("mine\n")
    before = snapshot(out)
    assert main(["analyze", str(root), "--out", str(out)]) == 2
    assert "holds files i2m2 analyze did not write (notes.txt)" in one_error_line(capsys)
    assert snapshot(out) == before


@pytest.mark.slow
def test_the_default_folder_is_i2m2s_own(tmp_path: Path):
    root = write_run(tmp_path / "run")
    (root / "analysis").mkdir()
    (root / "analysis" / "entropy.csv").write_text("from an i2m2 that kept no record\n")
    (root / "analysis" / "notes.txt").write_text("kept\n")
    written = analyze_run(root)  # RUN_DIR/analysis: rewritten as before
    assert (root / "analysis" / "entropy.csv").read_bytes() != b"from an i2m2 that kept no record\n"
    assert (root / "analysis" / "notes.txt").read_text() == "kept\n"
    assert analyze_run(root, root / "analysis") == written  # the same folder given with --out
    assert analyze_run(root, root / ".." / "run" / "analysis")  # ... however it is spelled


@pytest.mark.slow
def test_a_full_disk_suggests_running_analyze_again_not_resume(tmp_path: Path, capsys, monkeypatch):
    root = write_run(tmp_path / "run")
    out = tmp_path / "elsewhere"
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if Path(dst).name == "rescue.csv":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    assert main(["analyze", str(root), "--out", str(out)]) == 2
    monkeypatch.setattr(os, "replace", real_replace)
    line = one_error_line(capsys)
    assert line == (
        f"i2m2 analyze: error: {out / 'rescue.csv'}: no space left on the device; free some space and "
        "run i2m2 analyze again"
    )
    assert not list(out.glob(".*.tmp"))
    assert main(["analyze", str(root), "--out", str(out)]) == 0  # what it wrote before is its own
    assert (out / "rescue.csv").is_file()


def test_out_folder(tmp_path: Path):
    root = write_run(tmp_path / "run")
    written = analyze_run(root, tmp_path / "elsewhere")
    assert written and all(p.parent == tmp_path / "elsewhere" for p in written)
    assert not (root / "analysis").exists()
