"""The README's examples run as written (on reduced epochs and seeds), and its Quick start is what CI runs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch

from i2m2.cli import main

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(python|bash)\n(.*?)```", README, re.S)


def python_block(containing: str) -> str:
    (block,) = [code for kind, code in BLOCKS if kind == "python" and containing in code]
    return block


def commands(prefix: str) -> list[list[str]]:
    lines = [
        line.split("#")[0].strip() for kind, code in BLOCKS if kind == "bash" for line in code.splitlines()
    ]
    return [shlex.split(line)[1:] for line in lines if line.startswith(prefix)]


def quick(argv: list[str], out: Path) -> list[str]:
    """The README's command with one seed, few epochs and a fresh run folder."""
    argv = [a for a in argv]
    if "--seeds" in argv:
        argv[argv.index("--seeds") + 1] = "1"
    if "--out" in argv:
        argv[argv.index("--out") + 1] = str(out)
    return [*argv, "--max-epochs", "3"]


def test_readme_model_example_runs():
    namespace: dict = {}
    exec(compile(python_block("LateFusion(encoders="), "README.md", "exec"), namespace)
    log_probs = namespace["log_probs"]
    assert log_probs.shape == (8, 10)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(8), atol=1e-5)


@pytest.mark.slow
def test_readme_own_data_routes_run_as_written(tmp_path, monkeypatch, capsys):
    """Route 1 (npz + i2m2 run features), route 2 (run_experiment) and route 3 (FILE.py:FACTORY)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(python_block("np.savez"), "README.md", "exec"), {})
    assert sorted(p.name for p in (tmp_path / "data" / "digits").iterdir()) == [
        "test.npz",
        "train.npz",
        "val.npz",
    ]

    features = commands("i2m2 run features")
    assert len(features) == 2
    for k, argv in enumerate(features):
        assert main(quick(argv, tmp_path / f"features{k}")) == 0, capsys.readouterr().err
    assert "| i2m2[lrtf] |" in capsys.readouterr().out

    api = (
        python_block("run_experiment(").replace("seeds=3", "seeds=1").replace("max_epochs=40", "max_epochs=3")
    )
    namespace: dict = {}
    exec(compile(api, "README.md", "exec"), namespace)
    accuracy = {row["method"]: row["metrics"]["acc"]["mean"] for row in namespace["rows"]}
    assert set(accuracy) == {"unimodal:left", "unimodal:right", "intra", "inter", "i2m2"}
    assert accuracy["i2m2"] > 0.8  # ten digit classes: real learning even with a few epochs

    (own,) = commands("i2m2 run examples/")
    monkeypatch.chdir(ROOT)
    assert main(quick(own, tmp_path / "own")) == 0, capsys.readouterr().err
    assert "| i2m2 |" in capsys.readouterr().out


def test_ci_runs_the_quick_start_commands_as_written():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(found) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    install, tests = found
    assert install in ci.splitlines()
    assert tests in ci.splitlines()
