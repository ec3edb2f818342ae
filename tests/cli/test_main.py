"""The ``i2m2`` command: every command explains itself, and bad input is one line with exit status 2."""

from __future__ import annotations

import pytest

from i2m2.cli import main


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["data", "avmnist"], ["analyze"], ["fit"]])
def test_every_command_explains_itself(command, capsys):
    try:
        code = main([*command, "--help"])
    except SystemExit as exit_info:  # jsonargparse and LightningCLI exit after printing help
        code = exit_info.code
    assert code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "no-such-experiment", "--out", "{tmp}/r"], "unknown experiment 'no-such-experiment'"),
        (["run", "synthetic", "--methods", "bogus", "--out", "{tmp}/r"], "unknown method 'bogus'"),
        (["run", "synthetic", "--data-dir", "{tmp}/missing"], "no such file or folder"),
        (["run", "synthetic", "--out", "{tmp}/a-file"], "not a folder"),
        (["run", "synthetic", "--seeds", "0", "--out", "{tmp}/r"], "--seeds: expected an integer >= 1"),
        (["run", "synthetic", "--seeds", "x", "--out", "{tmp}/r"], 'key "seeds"'),
        (["run", "synthetic", "--first-seed", "-1", "--out", "{tmp}/r"], "--first_seed: expected an integer"),
        (["run", "synthetic", "--pretrain.lr", "abc"], 'key "pretrain.lr"'),
        (["run", "synthetic", "--pretrain.lr", "-1"], "lr: expected a number > 0"),
        (["run", "synthetic", "--experts.video.lr", "0.1"], "unknown name(s) ['video']"),
        (["run", "synthetic", "--no-such-option", "1"], "unrecognized arguments"),
        (["run", "synthetic", "--fusion", "lrtf", "--out", "{tmp}/r"], "unknown fusion(s) ['lrtf']"),
        (["run", "synthetic", "--methods", "intra", "intra", "--out", "{tmp}/r"], "given more than once"),
        (["run", "synthetic", "--all-subsets", "--out", "{tmp}/r"], "needs three or more modalities"),
        (["run", "nope.py:factory"], "no such file nope.py"),
        (["run", "os:getcwd", "--out", "{tmp}/r"], "expected i2m2.Experiment"),
        (["bogus"], "unknown command 'bogus'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
