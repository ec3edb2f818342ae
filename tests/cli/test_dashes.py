"""``--snr-db`` and ``--snr_db`` both reach a jsonargparse parser built from a signature."""

from __future__ import annotations

import pytest
from jsonargparse import ArgumentParser

from i2m2.cli.dashes import underscored

NAMES = ["snr_db", "energy_kept", "seed", "pretrain.batch_size"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--snr-db", "-5"], ["--snr_db", "-5"]),
        (["--snr-db=-5"], ["--snr_db=-5"]),
        (["--snr_db", "-5", "--energy_kept=0.5"], ["--snr_db", "-5", "--energy_kept=0.5"]),  # already so
        (["--pretrain.batch-size", "8"], ["--pretrain.batch_size", "8"]),  # nested keys
        (["--seed", "3"], ["--seed", "3"]),  # no underscore: nothing to do
        (["--title=a-b_c", "--snr-db=x-y"], ["--title=a-b_c", "--snr_db=x-y"]),  # values as they were
        (["--out", "--snr-db"], ["--out", "--snr_db"]),  # an option's spelling wherever it stands
        (["--unknown-option", "1"], ["--unknown-option", "1"]),  # left for the parser to reject as typed
        (
            ["--snr-dbx", "1", "-snr-db", "snr-db"],
            ["--snr-dbx", "1", "-snr-db", "snr-db"],
        ),  # exact names only
        (["--energy-kept", "1", "--", "--snr-db"], ["--energy_kept", "1", "--", "--snr-db"]),  # after --
        ([], []),
    ],
)
def test_underscored_rewrites_only_known_option_names(argv, expected):
    assert underscored(argv, NAMES) == expected


def test_underscored_leaves_its_input_alone_and_accepts_any_iterable():
    argv = ["--snr-db", "1"]
    assert underscored(argv, iter(NAMES)) == ["--snr_db", "1"]
    assert argv == ["--snr-db", "1"]


def test_both_spellings_parse_the_same_through_jsonargparse():
    def build(out: str, snr_db: float = -14.0, energy_kept: float = 0.25) -> None:
        """Build.

        Args:
            out: output folder.
            snr_db: ratio in dB.
            energy_kept: share kept.
        """

    parser = ArgumentParser(exit_on_error=False)
    parser.add_function_arguments(build, as_group=False)
    names = ["out", "snr_db", "energy_kept"]
    dashed = parser.parse_args(underscored(["--out", "o", "--snr-db", "-5", "--energy-kept=0.5"], names))
    plain = parser.parse_args(underscored(["--out", "o", "--snr_db", "-5", "--energy_kept=0.5"], names))
    assert dashed.as_dict() == plain.as_dict() == {"out": "o", "snr_db": -5.0, "energy_kept": 0.5}
