"""The README's Python example runs as written, and its Quick start is what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]


def test_readme_python_example_runs():
    readme = (ROOT / "README.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    log_probs = namespace["log_probs"]
    assert log_probs.shape == (8, 10)
    assert torch.allclose(log_probs.exp().sum(1), torch.ones(8), atol=1e-5)


def test_ci_runs_the_quick_start_commands_as_written():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(commands) == 2
    ci = (ROOT / ".ci" / "run").read_text()
    install, tests = commands
    assert install in ci.splitlines()
    assert tests in ci.splitlines()
