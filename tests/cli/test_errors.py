"""How the command line reports a full disk and Ctrl-C: one line, and --resume only where a command has it."""

from __future__ import annotations

import errno

import pytest


@pytest.mark.parametrize(
    ("prog", "hint"),
    [
        ("i2m2 run", "finished jobs are kept: free some space and continue with --resume"),
        ("i2m2 demo", "finished jobs are kept: free some space and continue with --resume"),
        ("i2m2 data", "free some space, delete the partly written --out folder and build again"),
        ("i2m2 analyze", "free some space and run i2m2 analyze again"),
        ("i2m2 fit", "free some space and try again"),
    ],
)
def test_a_full_disk_suggests_resume_only_to_commands_that_have_it(prog, hint, capsys):
    from i2m2.cli.errors import report

    def full() -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "/data/x.npy")

    assert report(prog, full) == 2
    assert capsys.readouterr().err == f"{prog}: error: /data/x.npy: no space left on the device; {hint}\n"


@pytest.mark.parametrize(
    ("prog", "line"),
    [
        ("i2m2 run", "i2m2 run: interrupted; finished jobs are kept, continue with --resume"),
        ("i2m2 data", "i2m2 data: interrupted; delete the partly written --out folder before building again"),
        ("i2m2 analyze", "i2m2 analyze: interrupted"),
    ],
)
def test_ctrl_c_suggests_resume_only_to_commands_that_have_it(prog, line, capsys):
    from i2m2.cli.errors import report

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert report(prog, interrupted) == 130
    assert capsys.readouterr().err == line + "\n"


def test_ctrl_c_inside_deferred_block_is_raised_after_the_block_completes():
    """An import interrupted half-way can leave a module broken; the interrupt waits for the block."""
    import os
    import signal

    import pytest

    from i2m2.cli.errors import deferred_interrupt

    finished = []
    # What the process inherited: Python's handler, or SIG_IGN when started in the background of a shell.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), deferred_interrupt():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append("after the signal")
    assert finished == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
