"""Scale-out as users run it: two "nodes" on one machine, each its own launcher, TMPDIR and folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts two node processes that each run a whole comparison

ARGS = ["run", "synthetic", "--regimes", "inter-dominant", "--methods", "unimodal:m0", "inter", "i2m2"]
ARGS += ["--seeds", "1", "--max-epochs", "10", "--n-train", "800", "--n-test", "1000"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_finish_with_the_table_of_one_process(tmp_path):
    script = str(Path(sys.executable).with_name("i2m2"))
    base = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [script, *ARGS, "--out", str(tmp_path / "one")], capture_output=True, text=True, timeout=300, env=base
    )
    assert single.returncode == 0, single.stderr

    shared = tmp_path / "shared-run"  # the run folder lives on storage both nodes see
    port = str(free_port())
    nodes = []
    for rank in (0, 1):
        home = tmp_path / f"node{rank}"
        (home / "tmp").mkdir(parents=True)
        env = base | {"NODE_RANK": str(rank), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        env["TMPDIR"] = str(home / "tmp")
        argv = [script, *ARGS, "--out", str(shared), "--trainer.accelerator", "cpu"]
        argv += ["--trainer.strategy", "ddp", "--trainer.num_nodes", "2", "--trainer.devices", "1"]
        nodes.append(
            subprocess.Popen(
                argv, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err
    assert "| i2m2 |" in outputs[0][0] and "| i2m2 |" not in outputs[1][0]  # rank 0 reports, once

    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((shared / "results.json").read_text())
    assert two["config"]["trainer"]["num_nodes"] == 2
    assert [(r["method"], r["group"], set(r["metrics"])) for r in two["rows"]] == [
        (r["method"], r["group"], set(r["metrics"])) for r in one["rows"]
    ]
    # Two processes see each batch split in half, so training differs a little; the table must not.
    for a, b in zip(one["rows"], two["rows"], strict=True):
        assert abs(a["metrics"]["acc"]["mean"] - b["metrics"]["acc"]["mean"]) < 0.1, a["method"]
    accuracy = {r["method"]: r["metrics"]["acc"]["mean"] for r in two["rows"]}
    assert accuracy["i2m2"] > accuracy["unimodal:m0"] + 0.15  # the inter-dominant regime, trained for real
    assert not list((tmp_path / "node1").rglob("*.json"))  # nothing written in a node's own folder
    assert sorted(p.name for p in (shared / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "checkpoints").iterdir()
    )


def test_one_seed_has_no_spread_to_show():
    from i2m2.runs.results import cost_table, markdown_table

    one = {"mean": 0.5, "std": 0.0, "per_seed": [0.5]}
    two = {"mean": 0.5, "std": 0.1, "per_seed": [0.4, 0.6]}
    rows = [{"method": "m", "group": "", "metrics": {"acc": one}, "wall_time_s": one, "epochs": one}]
    assert "| m | **50.00 ± n/a** |" in markdown_table(rows)
    assert "0.5 ± n/a" in cost_table(rows)
    rows[0]["metrics"]["acc"] = two
    assert "| m | **50.00 ± 10.00** |" in markdown_table(rows)
