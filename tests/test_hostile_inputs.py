# ruff: noqa: E501  (the table of cases reads one case per line)
"""Hostile inputs and faults: one clear line and exit status 2 (or one ValueError), nothing lost, resumable.

A table of bad inputs runs through ``i2m2.cli.main`` in-process (a representative few through the
installed ``i2m2`` script), each asserting exit status 2, exactly one line on stderr naming the problem, no
traceback, and every file under the test's folder unchanged. Then the faults: a full disk, SIGINT,
SIGTERM, a second run into a folder in use, and ``kill -9`` followed by ``--resume``.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from i2m2.cli import main

SCRIPT = str(Path(sys.executable).with_name("i2m2"))
SMALL = ["--regimes", "inter-dominant", "--n-train", "100", "--n-val", "50", "--n-test", "50"]
TINY = [*SMALL, "--methods", "unimodal:m0", "--seeds", "1", "--max-epochs", "1"]
RUN = ["run", "synthetic", *TINY]
# The finished run every run-folder case starts from: two stage-1 jobs (intra can resume from them).
FINISHED = ["run", "synthetic", *SMALL, "--methods", "unimodal:m0", "unimodal:m1", "--seeds", "1"]
FINISHED += ["--max-epochs", "1"]
STEM = "inter-dominant__unimodal-m0__seed0"


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main([*FINISHED, "--out", str(out)]) == 0
    return out


# --- setups: each prepares the case's folder (before it is hashed) -------------------------------------


def write(name: str, text: str | bytes) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def write_both(first: str, second: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        write(first, "# mine\n")(tmp)
        write(second, "x")(tmp)

    return setup


def torch_file(name: str, value: Any) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        torch.save(value, tmp / name)

    return setup


def truncated_checkpoint(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / name
        path.write_bytes(path.read_bytes()[:500])

    return setup


def lock_held_by(pid: int, host: str | None = None) -> Callable[[Path], None]:
    return write("run/.i2m2.lock", f"{pid} {host or socket.gethostname()}\n")


def edit_run_record(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        path = tmp / "run" / "run.json"
        record = json.loads(path.read_text())
        change(record)
        path.write_text(json.dumps(record))

    return setup


def other_experiment(record: dict[str, Any]) -> None:
    record["identity"]["experiment"] = "mimic"


def other_experiment_rehashed(record: dict[str, Any]) -> None:
    from i2m2.runs.folder import identity_hash

    other_experiment(record)
    record["hash"] = identity_hash(record["identity"])


def remove(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).unlink()


def folder_instead_of(name: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).unlink()
        (tmp / name).mkdir()

    return setup


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def features_data(
    labels: Any = None,
    test_labels: Any = None,
    names: tuple[str, str] = ("a", "b"),
    test_value: tuple[int, float] | None = None,
) -> Callable[[Path], None]:
    """``{tmp}/feat/train.npz`` and ``test.npz`` as a user exports them, with one thing made hostile:
    the labels, the array names, or one test value (``(row, value)`` in modality ``b``)."""

    def setup(tmp: Path) -> None:
        folder = tmp / "feat"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        for split, y in (("train", labels), ("test", test_labels)):
            y = np.arange(60) % 3 if y is None else np.asarray(y)
            arrays = {name: rng.normal(size=(len(y), 4)) for name in names}
            if split == "test" and test_value is not None:
                arrays[names[1]][test_value[0], 2] = test_value[1]
            np.savez(folder / f"{split}.npz", labels=y, **arrays)

    return setup


def features_file(name: str, content: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """Good feature files, then ``feat/<name>`` replaced by ``content(its bytes)``."""

    def setup(tmp: Path) -> None:
        features_data()(tmp)
        path = tmp / "feat" / name
        path.write_bytes(content(path.read_bytes()))

    return setup


def npz_claiming_80_gb(_: bytes) -> bytes:
    """An archive whose member's .npy header claims (10**10,) float64, i.e. 80 GB, over 800 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**10,)})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("labels.npy", npy_bytes(np.arange(60) % 3))
        z.writestr("a.npy", header.getvalue() + bytes(800))
    return archive.getvalue()


def corrupt_member(data: bytes) -> bytes:
    """A compressed archive with bytes inside a member overwritten: its central directory is intact."""
    rng = np.random.default_rng(0)
    archive = io.BytesIO()
    np.savez_compressed(
        archive, labels=np.arange(60) % 3, a=rng.normal(size=(60, 4)), b=rng.normal(size=(60, 4))
    )
    damaged = bytearray(archive.getvalue())
    damaged[200:208] = b"\xff" * 8  # inside the deflate stream of 'a.npy'
    return bytes(damaged)


# A user's experiment file whose in-memory data is bad in one place, far past the first batch.
BAD_DATA_EXPERIMENT = """
import torch
from i2m2 import DataSplits, Experiment, MLP, MultimodalDataset, create_fusion


def split(n, seed, row=None, value=None, label=None, classes=3):
    generator = torch.Generator().manual_seed(seed)
    x = {"a": torch.randn(n, 3, generator=generator), "b": torch.randn(n, 3, generator=generator)}
    y = torch.arange(n) % classes if classes else torch.zeros(n, dtype=torch.long)
    if row is not None and value is not None:
        x["b"][row, 1] = value
    if row is not None and label is not None:
        y[row] = label
    return MultimodalDataset(x, y)


def bad_data(case: str = "", names: str = "a,b", classes: int = 3) -> Experiment:
    modalities = tuple(names.split(","))
    bad = {"nan-test": ("test", 90, float("nan"), None), "inf-train": ("train", 150, float("inf"), None),
           "label-test": ("test", 90, None, 7)}.get(case)

    def load(group, data_dir, seed):
        parts = {}
        for name, n in (("train", 200), ("val", 100), ("test", 100)):
            hit = bad is not None and bad[0] == name
            one_class = case == "one-class-test" and name == "test"
            parts[name] = split(n, len(name), *(bad[1:] if hit else (None, None, None)), 0 if one_class else classes)
        return DataSplits(parts["train"], parts["val"], parts["test"], classes)

    return Experiment(
        name="bad-data",
        description="in-memory data with one bad value far past the first batch",
        modalities=modalities,
        num_classes=classes,
        load_data=load,
        build_unimodal=lambda m, classes, group: MLP(3, [8], classes),
        build_inter={"late": lambda mods, classes, group: create_fusion("late", dict.fromkeys(mods, 3), classes)},
    )
"""
BAD = [
    "run",
    "{tmp}/bad.py:bad_data",
    "--seeds",
    "1",
    "--max-epochs",
    "1",
    "--methods",
    "unimodal:b",
    *["--out", "{tmp}/new"],
]
FEAT = [
    "run",
    "features",
    "--data-dir",
    "{tmp}/feat",
    "--seeds",
    "1",
    "--max-epochs",
    "1",
    *["--out", "{tmp}/new"],
]
NPZ_80_GB = "train.npz: array 'a' claims shape (10000000000,) float64 (80.0 GB) but holds 800 bytes"
NAME_RULE = "cannot be used; expected letters, digits and underscores, not starting with a digit"


NO_SETUP: Callable[[Path], None] | None = None
CKPT = f"run/checkpoints/{STEM}.ckpt"
RESUME = [*RUN, "--out", "{tmp}/run", "--resume"]
RESUME_INTRA = [*RUN[:-5], "intra", "--seeds", "1", "--max-epochs", "1", "--out", "{tmp}/run", "--resume"]
NEW = ["--out", "{tmp}/new"]

# (id, argv, the text the one line must hold, setup)
CASES: list[tuple[str, list[str], str, Callable[[Path], None] | None]] = [
    # numbers, each range-checked where it is read
    ("seeds-0", [*RUN, "--seeds", "0", *NEW], "--seeds: expected an integer >= 1, got 0", NO_SETUP),
    ("seeds-negative", [*RUN, "--seeds", "-1", *NEW], "--seeds: expected an integer >= 1", NO_SETUP),
    ("seeds-word", [*RUN, "--seeds", "x", *NEW], 'key "seeds"', NO_SETUP),
    ("max-epochs-0", [*RUN, "--max-epochs", "0", *NEW], "--max_epochs: expected an integer >= 1", NO_SETUP),
    ("max-epochs-negative", [*RUN, "--max-epochs", "-1", *NEW], "--max_epochs: expected an integer >= 1", NO_SETUP),
    ("max-epochs-fraction", [*RUN, "--max-epochs", "2.5", *NEW], 'key "max_epochs"', NO_SETUP),
    ("lr-0", [*RUN, "--pretrain.lr", "0", *NEW], "lr: expected a number > 0, got 0", NO_SETUP),
    ("lr-negative", [*RUN, "--pretrain.lr", "-1", *NEW], "lr: expected a number > 0", NO_SETUP),
    ("lr-word", [*RUN, "--pretrain.lr", "abc", *NEW], 'key "pretrain.lr"', NO_SETUP),
    ("lr-nan", [*RUN, "--finetune.lr", "nan", *NEW], 'key "finetune.lr"', NO_SETUP),
    ("finetune-epochs-0", [*RUN, "--finetune.max_epochs", "0", *NEW], "max_epochs: expected a number >= 1", NO_SETUP),
    ("patience-negative", [*RUN, "--pretrain.patience", "-1", *NEW], "patience: expected a number >= 0", NO_SETUP),
    ("clip-negative", [*RUN, "--pretrain.gradient_clip_val", "-5", *NEW], "gradient_clip_val: expected", NO_SETUP),
    ("clip-0", [*RUN, "--pretrain.gradient_clip_val", "0", *NEW], "gradient_clip_val: expected a number > 0", NO_SETUP),
    ("batch-0", [*RUN, "--pretrain.batch_size", "0", *NEW], "batch_size: expected a number >= 1", NO_SETUP),
    ("weight-decay-negative", [*RUN, "--pretrain.weight_decay", "-1", *NEW], "weight_decay: expected", NO_SETUP),
    ("momentum-negative", [*RUN, "--pretrain.momentum", "-0.5", *NEW], "momentum: expected a number >= 0", NO_SETUP),
    ("optimizer-unknown", [*RUN, "--pretrain.optimizer", "bogus", *NEW], 'key "pretrain.optimizer"', NO_SETUP),
    ("expert-unknown", [*RUN, "--experts.video.lr", "0.1", *NEW], "unknown name(s) ['video']", NO_SETUP),
    ("expert-lr-negative", [*RUN, "--experts.m0.lr", "-1", *NEW], "lr: expected a number > 0", NO_SETUP),
    ("threads-0", [*RUN, "--threads", "0", *NEW], "--threads: expected an integer >= 1, got 0", NO_SETUP),
    ("threads-negative", [*RUN, "--threads", "-2", *NEW], "--threads: expected an integer >= 1", NO_SETUP),
    ("workers-negative", [*RUN, "--num-workers", "-1", *NEW], "--num_workers: expected an integer >= 0", NO_SETUP),
    ("n-train-0", [*RUN, "--n-train", "0", *NEW], "--n-train: expected an integer >= 1, got 0", NO_SETUP),
    ("regime-unknown", [*RUN, "--regimes", "bogus", *NEW], "unknown regime(s) ['bogus']", NO_SETUP),
    # devices and accelerators checked against what exists
    ("accelerator-gpu", [*RUN, "--trainer.accelerator", "gpu", *NEW], "no CUDA GPU found", NO_SETUP),
    ("accelerator-unknown", [*RUN, "--trainer.accelerator", "tpu", *NEW], "'tpu': not available on this machine", NO_SETUP),
    ("devices-word", [*RUN, "--trainer.devices", "abc", *NEW], "devices: expected an integer >= 1", NO_SETUP),
    ("devices-0", [*RUN, "--trainer.devices", "0", *NEW], "devices: expected an integer >= 1", NO_SETUP),
    ("devices-too-many", [*RUN, "--trainer.devices", "4096", *NEW], "devices: expected at most", NO_SETUP),
    ("nodes-0", [*RUN, "--trainer.num_nodes", "0", *NEW], "num_nodes: expected an integer >= 1", NO_SETUP),
    # names and lists
    ("method-unknown", [*RUN[:-5], "bogus", *NEW], "unknown method 'bogus'", NO_SETUP),
    ("method-twice", [*RUN[:-5], "intra", "intra", *NEW], "given more than once", NO_SETUP),
    ("fusion-unknown", [*RUN, "--fusion", "lrtf", *NEW], "unknown fusion(s) ['lrtf']", NO_SETUP),
    ("fusion-twice", [*RUN, "--fusion", "lf", "lf", *NEW], "names a fusion more than once", NO_SETUP),
    ("all-subsets-two-modalities", [*RUN, "--all-subsets", *NEW], "needs three or more modalities", NO_SETUP),
    ("data-dir-missing", [*RUN, "--data-dir", "{tmp}/missing", *NEW], "no such file or folder", NO_SETUP),
    ("experiment-unknown", ["run", "no-such-experiment", *NEW], "unknown experiment 'no-such-experiment'", NO_SETUP),
    ("experiment-file-missing", ["run", "nope.py:factory", *NEW], "no such file nope.py", NO_SETUP),
    ("experiment-not-a-factory", ["run", "os:getcwd", *NEW], "expected i2m2.Experiment", NO_SETUP),
    ("experiment-none", ["run"], "expected an experiment first", NO_SETUP),
    ("option-unknown", [*RUN, "--no-such-option", "1", *NEW], "unrecognized arguments", NO_SETUP),
    ("command-unknown", ["bogus"], "unknown command 'bogus'", NO_SETUP),
    ("experiments-option", ["experiments", "--bogus"], "unrecognized arguments: --bogus", NO_SETUP),
    # recipe files (data only)
    ("config-missing", [*RUN, "--config", "{tmp}/missing.yaml", *NEW], "File does not exist", NO_SETUP),
    ("config-lr-word", [*RUN, "--config", "{tmp}/c.yaml", *NEW], 'key "pretrain.lr"', write("c.yaml", "pretrain:\n  lr: abc\n")),
    ("config-epochs-fraction", [*RUN, "--config", "{tmp}/c.yaml", *NEW], 'key "pretrain.max_epochs"', write("c.yaml", "pretrain:\n  max_epochs: 2.5\n")),
    ("config-patience-negative", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "patience: expected a number >= 0", write("c.yaml", "pretrain:\n  patience: -1\n")),
    ("config-a-list", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "Unexpected config", write("c.yaml", "- 1\n- 2\n")),
    ("config-bad-yaml", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "Problems parsing config", write("c.yaml", "pretrain: {lr: [\n")),
    ("config-unknown-key", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'bogus_key' is not accepted", write("c.yaml", "bogus_key: 1\n")),
    ("config-class-path-plugin", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'trainer.plugins[]' names class_path 'os.system'; run configs are data only", write("c.yaml", "trainer:\n  plugins:\n    - class_path: os.system\n")),
    ("config-class-path-logger-module", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'trainer.logger' names class_path 'evil.Logger'", write("c.yaml", "trainer:\n  logger:\n    class_path: evil.Logger\n")),
    ("config-class-path-nested", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'pretrain' names class_path 'subprocess.Popen'", write("c.yaml", "pretrain:\n  class_path: subprocess.Popen\n")),
    ("config-python-tag", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "Problems parsing config", write("c.yaml", "pretrain: !!python/object/apply:os.system ['true']\n")),
    # run folders: one run each, never a user's files
    ("out-empty", [*RUN, "--out", ""], "--out: expected a folder path, got ''", NO_SETUP),
    ("out-a-file", [*RUN, "--out", "{tmp}/a-file"], "exists and is not a folder", write("a-file", "")),
    ("out-holds-a-run", [*RUN, "--out", "{tmp}/run"], "already holds a run; pass --resume", NO_SETUP),
    ("out-holds-user-results", [*RUN, "--out", "{tmp}/mine"], "holds files i2m2 did not write (results.csv)", write("mine/results.csv", "my,table\n")),
    ("out-holds-user-files-resume", [*RUN, "--out", "{tmp}/mine", "--resume"], "holds files i2m2 did not write (notes.txt, results.md)", write_both("mine/results.md", "mine/notes.txt")),
    ("resume-other-max-epochs", [*RESUME, "--max-epochs", "2"], "max_epochs_override was 1, now 2", NO_SETUP),
    ("resume-other-lr", [*RESUME, "--pretrain.lr", "0.01"], "recipe.pretrain.lr was 0.003, now 0.01", NO_SETUP),
    ("resume-other-data", [*RESUME, "--n-test", "60"], "experiment_options.n_test was 50, now 60", NO_SETUP),
    ("resume-run-record-edited", RESUME, "run.json: edited by hand", edit_run_record(other_experiment)),
    ("resume-other-experiment", RESUME, "experiment was 'mimic', now 'synthetic'", edit_run_record(other_experiment_rehashed)),
    ("resume-run-record-deleted-other-lr", [*RESUME, "--pretrain.lr", "0.01"], "holds finished jobs but no run.json", remove("run/run.json")),
    ("resume-run-record-deleted-other-classes", [*RESUME, "--num-classes", "3"], "holds finished jobs but no run.json", remove("run/run.json")),
    ("resume-job-record-folder", RESUME, f"{STEM}.json: a folder where a job record belongs", folder_instead_of(f"run/jobs/{STEM}.json")),
    ("resume-stage1-of-another-model", RESUME_INTRA, "do not fit this method's model", torch_file(CKPT, {"state_dict": {"model.experts.m0.network.0.weight": torch.zeros(2, 2)}})),
    ("resume-other-prior", [*RESUME, "--prior-correction"], "prior_correction was False, now True", NO_SETUP),
    ("resume-run-record-garbage", RESUME, "run.json: not a readable run record", write("run/run.json", "{not json")),
    ("resume-run-record-list", RESUME, "run.json: expected a run record with 'identity'", write("run/run.json", "[1, 2]")),
    ("resume-checkpoint-truncated", RESUME_INTRA, f"{STEM}.ckpt: not a readable i2m2 checkpoint", truncated_checkpoint(CKPT)),
    ("resume-checkpoint-random", RESUME_INTRA, f"{STEM}.ckpt: not a readable i2m2 checkpoint", write(CKPT, os.urandom(300))),
    ("resume-checkpoint-foreign", RESUME_INTRA, f"{STEM}.ckpt: not a readable i2m2 checkpoint", torch_file(CKPT, {"weights": [1, 2]})),
    ("lock-held", RESUME, "in use by another i2m2 run (pid", lock_held_by(os.getpid())),
    ("lock-other-host", RESUME, "in use by another i2m2 run (pid 12 on elsewhere)", lock_held_by(12, "elsewhere")),
    # analyses
    ("analyze-missing", ["analyze", "{tmp}/missing"], "no such folder", NO_SETUP),
    ("analyze-not-a-run", ["analyze", "{tmp}"], "not a run folder (no results.json", NO_SETUP),
    ("analyze-nothing-to-do", ["analyze", "{tmp}/run"], "nothing to analyze", NO_SETUP),
    # datasets
    ("data-none", ["data"], "expected a dataset", NO_SETUP),
    ("data-unknown", ["data", "bogus"], "expected a dataset", NO_SETUP),
    ("data-avmnist-no-options", ["data", "avmnist"], "the following arguments are required", NO_SETUP),
    ("data-avmnist-mnist-missing", ["data", "avmnist", "--fsdd", "{tmp}", "--out", "{tmp}/av", "--mnist", "MISSING"], "--mnist MISSING: no such file or folder", NO_SETUP),
    ("data-avmnist-fsdd-missing", ["data", "avmnist", "--fsdd", "{tmp}/none", "--out", "{tmp}/av"], "--fsdd", NO_SETUP),
    ("data-nlvr2-image-size-0", ["data", "nlvr2-shapes", "--out", "{tmp}/n", "--image-size", "0"], "--image_size must be 8..1024 pixels, got 0", NO_SETUP),
    ("data-nlvr2-negative", ["data", "nlvr2-shapes", "--out", "{tmp}/n", "--train", "-4"], "positive multiple of 4", NO_SETUP),
    ("data-fastmri-0-volumes", ["data", "fastmri-phantom", "--out", "{tmp}/f", "--volumes", "0"], "volumes >= 1", NO_SETUP),
    ("data-dashed-option-word", ["data", "fastmri-phantom", "--out", "{tmp}/f", "--noise-std", "abc"], 'key "noise_std"', NO_SETUP),
    ("data-underscored-option-word", ["data", "nlvr2-shapes", "--out", "{tmp}/n", "--image_size=big"], 'key "image_size"', NO_SETUP),
    # dataset folders: a build never replaces files, so --out is a new or empty folder
    ("data-out-a-file", ["data", "nlvr2-shapes", "--out", "{tmp}/a-file"], "a-file: exists and is not a folder", write("a-file", "")),
    ("data-fastmri-into-fastmri-data", ["data", "fastmri-phantom", "--out", "{tmp}/f"], "/f: holds files (Annotations/knee.csv, singlecoil_train/file1000001.h5); i2m2 data writes only into a new or empty folder", write_both("f/Annotations/knee.csv", "f/singlecoil_train/file1000001.h5")),
    ("data-nlvr2-into-user-folder", ["data", "nlvr2-shapes", "--out", "{tmp}/n", "--train", "4"], "/n: holds files (notes.txt, train.json); i2m2 data writes only", write_both("n/train.json", "n/notes.txt")),
    ("data-avmnist-into-user-folder", ["data", "avmnist", "--fsdd", "{tmp}", "--out", "{tmp}/av"], "/av: holds files (train_labels.npy); i2m2 data writes only", write("av/train_labels.npy", os.urandom(64))),
    ("data-into-a-run", ["data", "fastmri-phantom", "--out", "{tmp}/run", "--volumes", "1"], "/run: holds files (results.csv, results.json, results.md, results.png, run.json, ...); i2m2 data", NO_SETUP),
    ("data-into-unrelated-file", ["data", "fastmri-phantom", "--out", "{tmp}/f"], "/f: holds files (deep/down/notes.txt)", write("f/deep/down/notes.txt", "mine")),
    # the features route: labels, values, names and files checked when the files are read
    ("features-labels-with-gaps", FEAT, "feat/train.npz: 'labels' lack class(es) 1, 2, 4, 5 of 0..6 (4 missing); expected integers 0..C-1 with every class present", features_data(labels=[0, 3, 6] * 20)),
    ("features-label-huge", FEAT, "feat/train.npz: 'labels' holds 1000000000000 at row 60, but 61 rows can hold at most 61 classes", features_data(labels=[0, 1, 2] * 20 + [10**12])),
    ("features-test-label-unseen", FEAT, "feat/test.npz: 'labels' holds 3 at row 3, a class train.npz does not have; expected integers 0..2", features_data(test_labels=[0, 1, 2, 3] * 10)),
    ("features-test-empty", FEAT, "feat/test.npz: no examples ('labels' is empty); expected at least one row per split", features_data(test_labels=np.zeros(0, dtype=np.int64))),
    ("features-test-value-1e300", FEAT, "feat/test.npz: modality 'b' row 5 holds 1e+300, which standardized with train.npz's mean and std is", features_data(test_value=(5, 1e300))),
    ("features-modality-slash", FEAT, f"feat/train.npz: modality name 'p/q' {NAME_RULE}", features_data(names=("p/q", "b"))),
    ("features-modality-colon", FEAT, f"feat/train.npz: modality name 'p:q' {NAME_RULE}", features_data(names=("p:q", "b"))),
    ("features-modality-dot", FEAT, f"feat/train.npz: modality name 'a.b' {NAME_RULE}", features_data(names=("a.b", "c"))),
    ("features-modality-empty", FEAT, f"feat/train.npz: modality name '' {NAME_RULE}", features_data(names=("", "c"))),
    ("features-modality-digit", FEAT, f"feat/train.npz: modality name '2d' {NAME_RULE}", features_data(names=("2d", "c"))),
    ("features-modality-inter", FEAT, "feat/train.npz: modality name 'inter' cannot be used; it is the inter-modality expert's name", features_data(names=("inter", "c"))),
    ("features-npy-as-npz", FEAT, "feat/train.npz: a single .npy array saved under an .npz name; expected an .npz archive (numpy.savez)", features_file("train.npz", lambda _: npy_bytes(np.zeros((3, 2))))),
    ("features-header-80-gb", FEAT, NPZ_80_GB, features_file("train.npz", npz_claiming_80_gb)),
    ("features-truncated", FEAT, "feat/test.npz: not a readable .npz file (BadZipFile", features_file("test.npz", lambda data: data[: len(data) // 2])),
    ("features-member-damaged", FEAT, "feat/train.npz: not a readable .npz file (zlib.error: Error -3 while decompressing data", features_file("train.npz", corrupt_member)),
    ("features-not-a-zip", FEAT, "feat/train.npz: not an .npz archive", features_file("train.npz", lambda _: b"a,b\n1,2\n")),
    # a user's experiment: names checked where the Experiment is made, in-memory data once when it is built
    ("experiment-modality-slash", [*BAD, "--names", "p/q,b"], f"experiment 'bad-data': modality name 'p/q' {NAME_RULE}", write("bad.py", BAD_DATA_EXPERIMENT)),
    ("experiment-modality-dash", [*BAD, "--names", "a,p-q"], f"experiment 'bad-data': modality name 'p-q' {NAME_RULE}", write("bad.py", BAD_DATA_EXPERIMENT)),
    ("experiment-nan-late-in-test", [*BAD, "--case", "nan-test"], "test split, modality 'b': row 90 holds NaN or infinite values", write("bad.py", BAD_DATA_EXPERIMENT)),
    ("experiment-inf-late-in-train", [*BAD, "--case", "inf-train"], "train split, modality 'b': row 150 holds NaN or infinite values", write("bad.py", BAD_DATA_EXPERIMENT)),
    ("experiment-label-late-in-test", [*BAD, "--case", "label-test"], "test labels: expected values in 0..2, got range 0..7 (first bad label 7 at row 90)", write("bad.py", BAD_DATA_EXPERIMENT)),
    # LightningCLI: no usage screen, no notes, checkpoints named
    # executors (issue 20) and Trainer arguments the recipe owns
    ("executor-unknown", [*RUN, "--executor", "threads", *NEW], 'key "executor"', NO_SETUP),
    ("executor-workers-0", [*RUN, "--executor", "processes", "--workers", "0", *NEW], "--workers: expected an integer >= 1, got 0", NO_SETUP),
    ("executor-cpus-0", [*RUN, "--executor", "ray", "--cpus-per-job", "0", *NEW], "expected > 0 and >= 0, got 0.0", NO_SETUP),
    ("executor-gpus-negative", [*RUN, "--gpus-per-job", "-1", *NEW], "expected > 0 and >= 0", NO_SETUP),
    ("executor-with-nodes", [*RUN, "--executor", "processes", "--trainer.num_nodes", "2", *NEW], "multi-node DDP (--trainer.num_nodes) runs one job at a time", NO_SETUP),
    ("trainer-max-epochs", [*RUN, "--trainer.max_epochs", "3", *NEW], "--trainer.max_epochs: set by the recipe's max_epochs", NO_SETUP),
    ("trainer-clip", [*RUN, "--trainer.gradient_clip_val=1", *NEW], "--trainer.gradient_clip_val: set by the recipe's gradient_clip_val", NO_SETUP),
    ("trainer-callbacks", [*RUN, "--trainer.callbacks", "EarlyStopping", *NEW], "--trainer.callbacks: set by the job's callbacks", NO_SETUP),
    ("trainer-mps", [*RUN, "--trainer.accelerator", "mps", *NEW], "'mps': not available on this machine", NO_SETUP),
    ("trainer-devices-list-word", [*RUN, "--trainer.devices", "0,x", *NEW], "devices: expected an integer >= 1, a list of indices or 'auto'", NO_SETUP),
    ("trainer-unknown", [*RUN, "--trainer.no_such", "1", *NEW], "unrecognized arguments", NO_SETUP),
    ("trainer-logger-module", [*RUN, "--trainer.logger", "no_such_module.Logger", *NEW], "trainer.logger", NO_SETUP),
    ("nodes-without-address", [*RUN, "--trainer.strategy", "ddp", "--trainer.num_nodes", "2", *NEW], "set MASTER_ADDR and MASTER_PORT", NO_SETUP),
    ("options-before-experiment-list", ["run", "--methods", "intra", "synthetic"], "expected an experiment first", NO_SETUP),
    ("finetune-methods-unknown", [*RUN, "--finetune-methods.inter.lr", "0.1", *NEW], "--finetune_methods: unknown name(s) ['inter']", NO_SETUP),
    ("print-config-bad-value", [*RUN, "--seeds", "x", "--print_config"], 'key "seeds"', NO_SETUP),
    ("config-logger-list-evil", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'trainer.logger[]' names class_path 'os.system'", write("c.yaml", "trainer:\n  logger:\n    - class_path: TensorBoardLogger\n    - class_path: os.system\n")),
    ("config-callbacks", [*RUN, "--config", "{tmp}/c.yaml", *NEW], "'trainer.callbacks[]' names class_path", write("c.yaml", "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.EarlyStopping\n")),
    # i2m2 fit spells the recipe as i2m2 run does, and says what is wrong the same way
    ("fit-pretrain-lr-word", ["fit", "--experiment", "synthetic", "--method", "unimodal:m0", "--pretrain.lr", "abc"], 'key "pretrain.lr"', NO_SETUP),
    ("fit-pretrain-lr-negative", ["fit", "--experiment", "synthetic", "--method", "unimodal:m0", "--pretrain.lr", "-1"], "lr: expected a number > 0", NO_SETUP),
    ("fit-expert-unknown", ["fit", "--experiment", "synthetic", "--experts.video.lr", "0.1"], "--experts: unknown name(s) ['video']", NO_SETUP),
    ("fit-group-unknown", ["fit", "--experiment", "synthetic", "--group", "nope", "--trainer.max_epochs", "1"], "unknown group 'nope'", NO_SETUP),
    ("fit-method-unknown", ["fit", "--experiment", "synthetic", "--method", "mixed", "--trainer.max_epochs", "1"], "unknown method 'mixed'", NO_SETUP),
    ("fit-fusion-unknown", ["fit", "--experiment", "synthetic", "--fusion", "lrtf", "--trainer.max_epochs", "1"], "unknown fusion 'lrtf'", NO_SETUP),
    ("fit-recipe-without-experiment", ["fit", "--pretrain.lr", "0.1"], "need --experiment", NO_SETUP),
    ("fit-no-model", ["fit"], "the following arguments are required", NO_SETUP),
    ("fit-experiment-unknown", ["fit", "--experiment", "nope"], "unknown experiment 'nope'", NO_SETUP),
    ("fit-epochs-word", ["fit", "--experiment", "synthetic", "--method", "i2m2", "--trainer.max_epochs", "abc"], 'key "trainer.max_epochs"', NO_SETUP),
    ("fit-accelerator-gpu", ["fit", "--experiment", "synthetic", "--trainer.accelerator", "gpu"], "gpu", NO_SETUP),
    ("fit-method-alone", ["fit", "--method", "i2m2"], "need --experiment", NO_SETUP),
    ("fit-experiment-no-value", ["fit", "--experiment"], "--experiment: expected a value", NO_SETUP),
    ("test-ckpt-missing", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/none.ckpt"], "none.ckpt: no such file", NO_SETUP),
    ("test-ckpt-truncated", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/" + CKPT], f"{STEM}.ckpt: not a readable checkpoint", truncated_checkpoint(CKPT)),
    ("test-ckpt-random", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/x.ckpt"], "x.ckpt: not a readable checkpoint", write("x.ckpt", os.urandom(200))),
    ("test-ckpt-text", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/x.ckpt"], "x.ckpt: not a readable checkpoint", write("x.ckpt", "a,b\n1,2\n")),
    ("test-ckpt-foreign", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/x.ckpt"], "x.ckpt: a checkpoint of another model", torch_file("x.ckpt", {"state_dict": {"w": torch.zeros(3)}})),
    ("test-ckpt-says-nothing", ["test", "--ckpt_path", "{tmp}/x.ckpt"], "x.ckpt: says nothing of the experiment that wrote it; pass --experiment", torch_file("x.ckpt", {"state_dict": {"model.w": torch.zeros(3)}, "hyper_parameters": {"lr": 0.1}})),
    ("test-ckpt-not-a-dict", ["test", "--experiment", "synthetic", "--ckpt_path", "{tmp}/x.ckpt"], "x.ckpt: not a Lightning checkpoint", torch_file("x.ckpt", [1, 2])),
]  # fmt: skip
# Through the installed script: exit status, stderr and the absence of Lightning's usage screen and notes.
SUBPROCESS = {"max-epochs-0", "test-ckpt-foreign"}


def prepare_case(
    tmp: Path, finished: Path, argv: list[str], setup: Callable[[Path], None] | None
) -> list[str]:
    shutil.copytree(finished, tmp / "run")
    if setup is not None:
        setup(tmp)
    return [a.replace("{tmp}", str(tmp)) for a in argv]


PROGRESS = re.compile(r"^\[\d+/\d+\] |^  ")  # a run's progress lines, before a job that fails


def assert_one_line(code: int, err: str, expected: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, err
    assert code == 2, err
    assert lines[0].startswith("i2m2"), lines[0]
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(("argv", "expected", "setup"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(
    argv, expected, setup, finished, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = prepare_case(tmp_path, finished, argv, setup)
    before = snapshot(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exit_info:  # only --help may exit
        pytest.fail(f"SystemExit({exit_info.code})")
    err = capsys.readouterr().err
    assert_one_line(code, err, expected)
    assert snapshot(tmp_path) == before  # nothing written, nothing lost, no lock or temp file left


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SUBPROCESS))
def test_bad_input_through_the_script(case, finished, tmp_path):
    _, argv, expected, setup = next(c for c in CASES if c[0] == case)
    argv = prepare_case(tmp_path, finished, argv, setup)
    before = snapshot(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([SCRIPT, *argv], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert_one_line(done.returncode, done.stderr, expected)
    assert "usage:" not in done.stdout + done.stderr
    assert "intended to run from within Python" not in done.stderr
    assert snapshot(tmp_path) == before


def test_the_table_is_large_enough():
    assert len(CASES) + len(API_CASES) >= 180  # with the behaviour tests below, over 200 hostile inputs
    assert len({c[0] for c in CASES}) == len(CASES)


# --- the Python API: one ValueError (or TypeError) naming what is wrong ---------------------------------


def api_run_options(**kwargs: Any) -> Callable[[Path], Any]:
    from i2m2.orchestration.comparison import RunOptions

    return lambda tmp: RunOptions(**kwargs)


def api_stage(**kwargs: Any) -> Callable[[Path], Any]:
    from i2m2.experiment import StageConfig

    return lambda tmp: StageConfig(**kwargs)


def api_run_into_empty_path(tmp: Path) -> Any:
    from i2m2.catalog import get_experiment
    from i2m2.orchestration.comparison import run_experiment

    return run_experiment(get_experiment("synthetic", regimes=["inter-dominant"]), "", seeds=1)


def api_presence_typo(tmp: Path) -> Any:
    from i2m2.models.i2m2 import I2M2

    model = I2M2(experts={"a": nn.Linear(2, 3)})
    return model({"a": torch.randn(4, 2)}, present={"aa": torch.ones(4, dtype=torch.bool)})


def api_tensor_fusion_six(tmp: Path) -> Any:
    from i2m2.models.registry import create_fusion

    return create_fusion(
        "tensor", {f"m{i}": 10 for i in range(6)}, 3, hidden=128
    )  # refused before allocating


def api_integer_logits(tmp: Path) -> Any:
    from i2m2.models.i2m2 import I2M2

    class Counts(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.ones(len(x), 3, dtype=torch.long)

    return I2M2(experts={"a": Counts(), "b": nn.Linear(2, 3)}, num_classes=3)(
        {"a": torch.randn(4, 2), "b": torch.randn(4, 2)}
    )


def api_truncated_checkpoint(tmp: Path) -> Any:
    from i2m2.runs.folder import read_model_weights

    path = tmp / "x.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    return read_model_weights(path)


def api_module_classes(tmp: Path) -> Any:
    from i2m2.models.i2m2 import I2M2
    from i2m2.training.lightning_module import MethodModule

    return MethodModule(I2M2(experts={"a": nn.Linear(2, 3)}))  # no num_classes: the metrics need C


def api_pickle(reduce: Any) -> Callable[[Path], Any]:
    class Payload:
        def __reduce__(self) -> Any:
            return reduce

    def call(tmp: Path) -> Any:
        from i2m2.data.safe_pickle import safe_load_pickle

        path = tmp / "x.pkl"
        path.write_bytes(pickle.dumps(Payload(), protocol=2))
        return safe_load_pickle(path)

    return call


def api_avmnist(value: float) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        from i2m2.data.avmnist import load_avmnist

        rng = np.random.default_rng(0)
        for split, n in (("train", 24), ("test", 8)):
            (tmp / "av" / "image").mkdir(parents=True, exist_ok=True)
            (tmp / "av" / "audio").mkdir(parents=True, exist_ok=True)
            image = rng.uniform(0, 255, (n, 784)).astype(np.float32)
            image[3, 5] = value
            np.save(tmp / "av" / "image" / f"{split}_data.npy", image)
            np.save(
                tmp / "av" / "audio" / f"{split}_data.npy",
                rng.integers(0, 256, (n, 112, 112)).astype(np.uint8),
            )
            np.save(tmp / "av" / f"{split}_labels.npy", rng.integers(0, 10, n))
        return load_avmnist(tmp / "av")

    return call


def api_scale(**kwargs: Any) -> Callable[[Path], Any]:
    from i2m2.training.trainer_options import check_trainer_options

    return lambda tmp: check_trainer_options(kwargs)


def api_experiment_named(*modalities: str) -> Callable[[Path], Any]:
    from i2m2.experiment import Experiment

    return lambda tmp: Experiment(
        "named",
        "",
        modalities,
        3,
        lambda g, d, s: None,
        lambda m, c, g: nn.Identity(),
        {"late": None},  # type: ignore[arg-type,dict-item]
    )


def api_splits_with(
    split: str, row: int, value: float | None = None, label: int | None = None
) -> Callable[[Path], Any]:
    """DataSplits whose ``split`` holds ``value`` (modality b) or ``label`` at ``row``, past any first batch."""

    def call(tmp: Path) -> Any:
        from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset

        parts = {}
        for name in ("train", "val", "test"):
            x = {"a": torch.randn(200, 3), "b": torch.randn(200, 2, 2)}
            y = torch.arange(200) % 3
            if name == split and value is not None:
                x["b"][row, 1, 0] = value
            if name == split and label is not None:
                y[row] = label
            parts[name] = MultimodalDataset(x, y)
        return DataSplits(parts["train"], parts["val"], parts["test"], 3)

    return call


def api_npz_beyond_memory(tmp: Path) -> Any:
    from unittest import mock

    from i2m2.data import safe_npz

    np.savez(tmp / "big.npz", labels=np.arange(1000), a=np.zeros((1000, 100)))
    with mock.patch.object(safe_npz, "available_memory", return_value=10_000):
        return safe_npz.read_npz_arrays(tmp / "big.npz", "arrays")


def api_feature_row_nan(tmp: Path) -> Any:
    from i2m2.data.feature_cache import FeatureDataset

    features = np.zeros((300, 4), dtype=np.float32)
    features[250, 1] = np.nan
    np.save(tmp / "f.npy", features)
    dataset = FeatureDataset(
        {"image": np.load(tmp / "f.npy", mmap_mode="r")}, torch.zeros(300, dtype=torch.long)
    )
    assert dataset.__getitems__(list(range(64)))[0]["image"].shape == (64, 4)  # finite rows read fine
    return dataset.__getitems__(list(range(200, 264)))


def api_image_transform_nan(tmp: Path) -> Any:
    from PIL import Image

    from i2m2.data.image_files import load_image

    Image.new("RGB", (4, 4)).save(tmp / "x.png")
    return load_image(tmp / "x.png", lambda image: torch.zeros(3, 4, 4) / 0.0)


API_CASES: list[tuple[str, Callable[[Path], Any], str]] = [
    ("options-seeds-0", api_run_options(seeds=0), "--seeds: expected an integer >= 1"),
    ("options-max-epochs-0", api_run_options(max_epochs=0), "--max_epochs: expected an integer >= 1"),
    ("options-workers-negative", api_run_options(num_workers=-1), "--num_workers: expected an integer >= 0"),
    ("stage-lr-0", api_stage(lr=0.0), "lr: expected a number > 0"),
    ("stage-lr-string", api_stage(lr="1e-3"), "lr: expected a number > 0, got '1e-3'"),
    ("stage-patience-negative", api_stage(patience=-1), "patience: expected a number >= 0"),
    ("stage-clip-negative", api_stage(gradient_clip_val=-5.0), "gradient_clip_val: expected a number > 0"),
    ("stage-epochs-fraction", api_stage(max_epochs=0.5), "max_epochs: expected a number >= 1"),
    ("scale-gpu", api_scale(accelerator="gpu"), "no CUDA GPU found"),
    ("scale-devices-0", api_scale(devices=0), "devices: expected an integer >= 1"),
    ("run-into-empty-path", api_run_into_empty_path, "--out: expected a folder path, got ''"),
    ("presence-mask-typo", api_presence_typo, "presence mask names ['aa']"),
    (
        "tensor-fusion-six-modalities",
        api_tensor_fusion_six,
        "tensor fusion over 6 modalities has 3,089,630,179 parameters",
    ),
    ("integer-logits", api_integer_logits, "expert 'a': expected floating-point logits, got torch.int64"),
    (
        "mlp-negative-size",
        lambda tmp: __import__("i2m2").MLP(-3, [4], 2),
        "MLP: in_dim must be an integer >= 1, got -3",
    ),
    (
        "fusion-negative-size",
        lambda tmp: __import__("i2m2").create_fusion("late", {"a": -2, "b": 3}, 3),
        "input_dims['a'] must be an integer >= 1",
    ),
    ("truncated-checkpoint-api", api_truncated_checkpoint, "not a readable i2m2 checkpoint"),
    ("module-class-count", api_module_classes, "model: build it with num_classes=C"),
    (
        "pickle-bytearray-bomb",
        api_pickle((bytearray, (1 << 40,))),
        "bytearray of 1099511627776 bytes exceeds",
    ),
    ("pickle-runs-code", api_pickle((os.system, ("true",))), "refusing to load 'posix.system'"),
    ("avmnist-huge-pixels", api_avmnist(1e30), "outside the format's range 0..255"),
    ("avmnist-negative-pixels", api_avmnist(-40.0), "outside the format's range 0..255"),
    (
        "experiment-modality-colon",
        api_experiment_named("p:q", "r"),
        f"experiment 'named': modality name 'p:q' {NAME_RULE}",
    ),
    (
        "experiment-modality-dot",
        api_experiment_named("a.b", "r"),
        f"experiment 'named': modality name 'a.b' {NAME_RULE}",
    ),
    (
        "experiment-modality-empty",
        api_experiment_named("", "r"),
        f"experiment 'named': modality name '' {NAME_RULE}",
    ),
    (
        "experiment-modality-inter",
        api_experiment_named("inter", "r"),
        "modality name 'inter' cannot be used; it is the inter-modality expert's name",
    ),
    (
        "splits-nan-late-in-test",
        api_splits_with("test", 150, value=float("nan")),
        "test split, modality 'b': row 150 holds NaN or infinite values",
    ),
    (
        "splits-inf-late-in-val",
        api_splits_with("val", 199, value=float("-inf")),
        "val split, modality 'b': row 199 holds NaN or infinite values",
    ),
    (
        "splits-label-late-in-train",
        api_splits_with("train", 130, label=-2),
        "train labels: expected values in 0..2, got range -2..2 (first bad label -2 at row 130)",
    ),
    (
        "npz-beyond-memory",
        api_npz_beyond_memory,
        "big.npz: its arrays need 808.0 kB of memory, more than the 10.0 kB available",
    ),
    (
        "feature-cache-row-nan",
        api_feature_row_nan,
        "f.npy: modality 'image' feature row 250 holds NaN or infinite values",
    ),
    (
        "image-transform-nan",
        api_image_transform_nan,
        "x.png: the image transform gave NaN or infinite values",
    ),
]


@pytest.mark.parametrize(("call", "expected"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_errors_are_one_value_error(call, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises((ValueError, TypeError)) as info:
        call(tmp_path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("jobs")) and not list(tmp_path.glob("results.*"))  # nothing in the cwd


def test_an_expert_with_non_finite_logits_stops_the_job_naming_it_and_the_epoch(tmp_path):
    from i2m2.catalog import get_experiment
    from i2m2.orchestration.comparison import run_experiment
    from i2m2.training.finite import NonFiniteError

    class Overflow(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x) * float("inf")

    experiment = get_experiment("synthetic", regimes=["inter-dominant"], n_train=100, n_val=50, n_test=50)
    build = experiment.build_unimodal
    experiment.build_unimodal = lambda m, c, g: Overflow(build(m, c, g)) if m == "m1" else build(m, c, g)
    with pytest.raises(
        NonFiniteError, match=r"method=unimodal:m1: the training loss is nan in epoch 1;.*'m1'"
    ):
        run_experiment(
            experiment, tmp_path / "run", seeds=1, max_epochs=2, methods=["intra"], epoch_progress=False
        )
    assert (tmp_path / "run" / "jobs" / f"{STEM}.json").is_file()  # the finished job is kept
    assert not (tmp_path / "run" / "jobs" / "inter-dominant__unimodal-m1__seed0.json").exists()
    assert not (tmp_path / "run" / ".i2m2.lock").exists()


# --- undefined metrics, numbers and names that used to be silently wrong --------------------------------


def test_an_undefined_auroc_is_null_with_a_note_and_na_never_bold(tmp_path, capsys):
    """A one-class test split has no AUROC (nor AUPRC): not 0.0000 in bold, but null and n/a."""
    from i2m2.runs.plots import bar_values

    write("bad.py", BAD_DATA_EXPERIMENT)(tmp_path)
    out = tmp_path / "run"
    argv = [f"{tmp_path}/bad.py:bad_data", "--case", "one-class-test", "--classes", "2", "--seeds", "1"]
    argv += ["--max-epochs", "1", "--methods", "unimodal:a", "unimodal:b", "--out", str(out)]
    assert main(["run", *argv]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())  # strict JSON: no NaN token
    for row in results["rows"]:
        for metric in ("auroc", "auprc"):
            stats = row["metrics"][metric]
            assert stats["mean"] is None and stats["std"] is None and stats["per_seed"] == [None]
            assert stats["note"].startswith("undefined in 1 of 1 seed(s): AU")
        assert 0 <= row["metrics"]["acc"]["mean"] <= 1 and "note" not in row["metrics"]["acc"]
    markdown = (out / "results.md").read_text()
    auroc = markdown.split("## auroc")[1].split("##")[0]
    assert "| unimodal:a | n/a |" in auroc and "| unimodal:b | n/a |" in auroc and "**" not in auroc
    assert "**" in markdown.split("## acc")[1].split("##")[0]  # a defined metric still has its best
    table = (out / "results.csv").read_text().splitlines()
    assert table[0].endswith(",note")
    assert any(line.startswith("unimodal:a,,auroc,n/a,n/a,1,n/a,undefined in 1 of 1") for line in table)
    series, undefined = bar_values(results["rows"], "auroc", [""])
    assert undefined == {"unimodal:a": [True], "unimodal:b": [True]}
    assert all(np.isnan(means[0]) for means, _ in series.values())  # a marked gap, not a bar at 0


def test_undefined_classes_are_left_out_of_macro_metrics_as_scikit_learn_does():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from i2m2.metrics import classification_metrics

    probs = torch.softmax(torch.randn(40, 4), 1)
    labels = torch.tensor([0, 1, 3] * 13 + [0])  # class 2 absent from the evaluated split
    metrics = classification_metrics(4, "")
    metrics.update(probs, labels)
    values = {k: float(v) for k, v in metrics.compute().items()}
    one_vs_rest = [roc_auc_score(labels == c, probs[:, c]) for c in (0, 1, 3)]
    assert values["auroc"] == pytest.approx(np.mean(one_vs_rest), abs=1e-5)  # not diluted by a 0 for class 2
    with warnings.catch_warnings():  # scikit-learn notes the predicted class 2 that the labels lack
        warnings.simplefilter("ignore", UserWarning)
        expected = balanced_accuracy_score(labels, probs.argmax(1))
    assert values["balanced_acc"] == pytest.approx(expected, abs=1e-6)
    binary = classification_metrics(2, "")
    binary.update(torch.softmax(torch.randn(20, 2), 1), torch.zeros(20, dtype=torch.long))
    values = {k: float(v) for k, v in binary.compute().items()}
    assert np.isnan(values["auroc"]) and np.isnan(values["auprc"]) and values["acc"] >= 0


def test_mean_auroc_over_findings_leaves_out_a_finding_without_both_classes():
    from sklearn.metrics import roc_auc_score

    from i2m2.objectives.multitask import MultiTaskObjective

    probs = torch.softmax(torch.randn(30, 3, 2), -1)
    labels = torch.stack(
        [torch.arange(30) % 2, torch.zeros(30, dtype=torch.long), (torch.arange(30) % 3 == 0).long()], 1
    )
    metrics = MultiTaskObjective(["acl", "meniscus", "cartilage"]).metrics(2, "")
    metrics.update(probs, labels)
    values = {k: float(v) for k, v in metrics.compute().items()}
    defined = [roc_auc_score(labels[:, t], probs[:, t, 1]) for t in (0, 2)]
    assert np.isnan(values["auroc_meniscus"])  # no positives: undefined, not 0
    assert values["auroc_acl"] == pytest.approx(defined[0], abs=1e-5)
    assert values["auroc"] == pytest.approx(np.mean(defined), abs=1e-5)


def test_an_undefined_mean_is_never_the_best_of_a_column():
    from i2m2.runs.results import build_rows, markdown_table

    jobs = {("", "low", 0): {"auroc": 0.6}, ("", "undefined", 0): {"auroc": float("nan")}}
    jobs |= {("", "high", 0): {"auroc": 0.7}, ("", "high", 1): {"auroc": 0.9}, ("", "low", 1): {"auroc": 0.5}}
    jobs[("", "undefined", 1)] = {"auroc": 0.99}
    rows = build_rows(jobs, ["low", "undefined", "high"], [""])
    assert (
        rows[1]["metrics"]["auroc"]["per_seed"] == [None, 0.99]
        and rows[1]["metrics"]["auroc"]["mean"] is None
    )
    table = markdown_table(rows, "auroc")
    assert (
        "| undefined | n/a |" in table
        and "| high | **80.00 ± 10.00** |" in table
        and "| low | 55.00" in table
    )


def test_feature_values_near_1e300_standardize_without_zeroing_the_modality(tmp_path):
    from i2m2.data.features import load_features

    features_data()(tmp_path)
    folder = tmp_path / "feat"
    for split in ("train", "test"):
        arrays = dict(np.load(folder / f"{split}.npz"))
        np.savez(folder / f"huge-{split}.npz", **arrays)
        arrays["b"] = arrays["b"] * 1e300  # float64 sums of these overflow: the old mean was inf
        np.savez(folder / f"{split}.npz", **arrays)
    huge = load_features(folder, seed=0, num_classes=3)
    for split in ("train", "test"):
        (folder / f"huge-{split}.npz").rename(folder / f"{split}.npz")
    plain = load_features(folder, seed=0, num_classes=3)
    for split in ("train", "test"):
        b = getattr(huge, split).inputs["b"]
        assert torch.isfinite(b).all() and b.abs().max() > 0.5  # not zeroed, not NaN
        assert torch.allclose(b, getattr(plain, split).inputs["b"], atol=1e-5)  # the same standardized values
    train = torch.cat([huge.train.inputs["b"], huge.val.inputs["b"]])  # train.npz, 10% of it validation
    assert float(train.std(0, unbiased=False).mean()) == pytest.approx(1.0, abs=1e-4)


def test_job_stems_of_names_that_used_to_collide_differ_and_old_stems_stay():
    from i2m2.runs.predictions import job_stem

    # all of these were "<group>__<method>__seed0" with "-" for every odd character: one checkpoint and job record
    collided = [
        ("a/b", "intra"),
        ("a:b", "intra"),
        ("a-b", "intra"),
        ("", "unimodal:p/q"),
        ("", "unimodal:p:q"),
        ("", "unimodal:p-q"),
    ]
    collided += [("", "inter[x/y]"), ("", "inter[x:y]"), ("all", "intra"), ("", "intra")]
    stems = [job_stem(group, method, 0) for group, method in collided]
    assert len(set(stems)) == len(stems), stems
    assert all(re.fullmatch(r"[A-Za-z0-9_.+-]+", stem) for stem in stems)  # still plain file names
    # the stems of the names the library makes are as before: earlier runs resume
    assert job_stem("inter-dominant", "unimodal:m0", 0) == STEM
    assert job_stem("", "i2m2[lrtf]", 2) == "all__i2m2-lrtf-__seed2"
    assert job_stem("mortality", "inter[null-token]", 1) == "mortality__inter-null-token-__seed1"


def test_in_memory_values_are_checked_once_when_the_splits_are_built(monkeypatch):
    from i2m2.data import multimodal_dataset
    from i2m2.data.multimodal_dataset import DataSplits, MultimodalDataset

    parts = [MultimodalDataset({"a": torch.randn(50, 3)}, torch.arange(50) % 2) for _ in range(3)]
    DataSplits(*parts, num_classes=2)

    def scan_again(x: torch.Tensor) -> None:
        raise AssertionError("the values were scanned a second time")

    monkeypatch.setattr(multimodal_dataset, "first_non_finite_row", scan_again)
    DataSplits(*parts, num_classes=2)  # the same datasets for another group: no second scan
    assert multimodal_dataset.first_non_finite_row is scan_again


def test_a_non_finite_fastmri_slice_is_named_where_it_is_read(tmp_path):
    import h5py

    from i2m2.data.fastmri import load_fastmri
    from i2m2.data.fastmri_phantom import phantom_max_width, write_phantom_dataset
    from i2m2.errors import DataError

    root = write_phantom_dataset(tmp_path, volumes=4, slices=2, size=16, seed=1)
    train, _, _ = load_fastmri(root, seed=0, crop=16, max_width=phantom_max_width(16))
    volume = train.volumes[-1]
    with h5py.File(volume.path, "r+") as f:
        f["kspace"][1, 3, 4] = np.nan
    assert torch.isfinite(train[0][0]["magnitude"]).all()  # other slices read as before
    with pytest.raises(
        DataError, match=rf"{volume.name}.h5: slice 1 gives NaN or infinite values in 'magnitude'"
    ):
        train[len(train) - 1]


# --- faults ---------------------------------------------------------------------------------------------


def rows(folder: Path) -> list[tuple[str, str, dict[str, Any]]]:
    results = json.loads((folder / "results.json").read_text())
    return [(r["method"], r["group"], r["metrics"]) for r in results["rows"]]


def test_disk_full_is_one_line_keeps_every_file_and_resumes(finished, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "jobs" / "inter-dominant__unimodal-m1__seed0.json").unlink()  # that job must run again
    rerun = "inter-dominant__unimodal-m1__seed0"
    before = {k: v for k, v in snapshot(run).items() if rerun not in k}
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if str(run) in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    code = main([*FINISHED, "--out", str(run), "--resume"])
    monkeypatch.setattr(os, "replace", real_replace)
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error" in line] == [last]
    assert "no space left on the device; finished jobs are kept" in last and "--resume" in last
    after = snapshot(run)
    assert {k: after.get(k) for k in before} == before  # nothing finished was touched
    assert not [k for k in after if k.endswith(".tmp") or k.endswith(".i2m2.lock")]
    assert main([*FINISHED, "--out", str(run), "--resume"]) == 0
    assert rows(run) == rows(finished)


def test_disk_full_while_building_data_is_one_line_without_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "phantom"
    argv = ["data", "fastmri-phantom", "--out", str(out), "--volumes", "2", "--slices", "2", "--size", "16"]
    real_replace = os.replace

    def full(src: Any, dst: Any) -> None:
        if str(out) in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    code = main(argv)
    monkeypatch.setattr(os, "replace", real_replace)
    err = capsys.readouterr().err
    hint = "free some space, delete the partly written --out folder and build again"
    assert_one_line(code, err, f"{out / 'Annotations' / 'knee.csv'}: no space left on the device; {hint}")
    assert "--resume" not in err
    assert not list(out.rglob("*.tmp"))
    assert main(argv) == 2  # as the line says: the partial build is refused ...
    assert "holds files (singlecoil_train/file1000001.h5" in capsys.readouterr().err
    shutil.rmtree(out)
    assert main(argv) == 0  # ... and once deleted, built
    assert (out / "Annotations" / "knee.csv").is_file()


def start(out: Path, *extra: str, seeds: int = 2) -> subprocess.Popen[str]:
    """A small run in its own process; ``seeds`` long enough that it is still running when signalled."""
    argv = [SCRIPT, "run", "synthetic", "--regimes", "inter-dominant", "--n-train", "1000", "--n-val", "50"]
    argv += [
        "--n-test",
        "50",
        "--methods",
        "unimodal:m0",
        "unimodal:m1",
        "--seeds",
        str(seeds),
        "--max-epochs",
        "15",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CI": "true"}
    return subprocess.Popen([*argv, *extra, "--out", str(out)], stderr=subprocess.PIPE, text=True, env=env)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline
        time.sleep(0.1)


def first_job_done(out: Path) -> Callable[[], bool]:
    return lambda: (out / "jobs" / f"{STEM}.json").is_file()


@pytest.mark.slow
def test_lock_stops_a_second_run_and_sigterm_sigint_stop_cleanly(tmp_path, capsys):
    term, interrupt = tmp_path / "term", tmp_path / "int"
    # 40 jobs of ~0.3 s: the signal, sent once the first has finished, finds the run still going
    runs = {
        signal.SIGTERM: (term, start(term, seeds=20)),
        signal.SIGINT: (interrupt, start(interrupt, seeds=20)),
    }
    wait_for(first_job_done(term), runs[signal.SIGTERM][1])
    assert main([*RUN, "--out", str(term), "--resume"]) == 2  # a second run into the folder in use
    assert f"in use by another i2m2 run (pid {runs[signal.SIGTERM][1].pid})" in capsys.readouterr().err
    for signum, (out, process) in runs.items():
        wait_for(first_job_done(out), process)
        process.send_signal(signum)
    for signum, (out, process) in runs.items():
        _, err = process.communicate(timeout=60)
        assert process.returncode == 128 + signum, err  # 143, 130
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1]
        name = signal.Signals(signum).name
        assert last == f"i2m2 run: stopped by {name}; finished jobs are kept in {out}; continue with --resume"
        assert not (out / ".i2m2.lock").exists()
        assert json.loads((out / "jobs" / f"{STEM}.json").read_text())["metrics"]


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_table_of_an_uninterrupted_run(tmp_path):
    options = ["--max-epochs", "3"]
    killed = tmp_path / "killed"
    run = start(killed, *options)
    wait_for(first_job_done(killed), run)
    run.kill()
    run.communicate(timeout=60)
    # what a kill -9 leaves: the lock of a dead process, and (here, simulated) a half-written temp file
    assert (killed / ".i2m2.lock").exists()
    (killed / "jobs" / f".{STEM}.json.abcd1234.tmp").write_text('{"metr')
    argv = ["run", "synthetic", "--regimes", "inter-dominant", "--n-train", "1000", "--n-val", "50"]
    argv += ["--n-test", "50", "--methods", "unimodal:m0", "unimodal:m1", "--seeds", "2", *options]
    assert main([*argv, "--out", str(killed), "--resume"]) == 0
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert rows(killed) == rows(tmp_path / "whole")
    assert not list(killed.rglob("*.tmp")) and not (killed / ".i2m2.lock").exists()


# --- resume can never mix runs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ("", "not JSON (JSONDecodeError)"),
        ("[1, 2]", "not a JSON object"),
        ('{"metrics": {}}', "no metrics"),
        ('{"metrics": {"acc": "high"}}', "metric(s) ['acc'] are not numbers"),
        (
            '{"metrics": {"acc": 0.9}, "method": "unimodal:m1", "group": "inter-dominant", "seed": 0}',
            "method is 'unimodal:m1', expected 'unimodal:m0'",
        ),
    ],
    ids=["empty", "list", "no-metrics", "metric-word", "another-job"],
)
def test_an_unreadable_job_record_is_run_again(record, why, finished, tmp_path, capsys):
    argv = prepare_case(tmp_path, finished, [*RUN, "--out", "{tmp}/run", "--resume"], None)
    expected = json.loads((tmp_path / "run" / "jobs" / f"{STEM}.json").read_text())["metrics"]
    (tmp_path / "run" / "jobs" / f"{STEM}.json").write_text(record)
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"{STEM}.json unreadable ({why}): it will be run again" in err
    rerun = json.loads((tmp_path / "run" / "jobs" / f"{STEM}.json").read_text())
    assert rerun["metrics"] == expected  # the same job, the same seed: the same numbers


def test_resume_refuses_data_replaced_under_the_same_data_dir(tmp_path, capsys):
    """Seeds of one table must come from one dataset: the run records a fingerprint of the files it read."""
    data = tmp_path / "feat"
    features_data()(tmp_path)
    argv = ["run", "features", "--data-dir", str(data), "--methods", "unimodal:a", "--max-epochs", "1"]
    argv += ["--out", str(tmp_path / "run")]
    assert main([*argv, "--seeds", "1"]) == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert set(record["identity"]["data"]) == {"train.npz", "test.npz"}
    before = snapshot(tmp_path / "run")
    features_data(test_value=(0, 5.0))(tmp_path)  # the same files, one test value replaced
    capsys.readouterr()
    assert main([*argv, "--seeds", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "(data: test.npz changed)" in err
    assert snapshot(tmp_path / "run") == before


def test_a_run_checkpoint_is_evaluated_as_it_is(finished, tmp_path, capsys):
    """``i2m2 test --ckpt_path RUN/checkpoints/X.ckpt`` rebuilds the job that wrote it (experiment, options,
    method, group, seed) and gives the metrics its job record holds."""
    record = json.loads((finished / "jobs" / f"{STEM}.json").read_text())
    capsys.readouterr()
    assert main(["test", "--ckpt_path", str(finished / "checkpoints" / f"{STEM}.ckpt")]) == 0
    out = capsys.readouterr().out
    for name in ("acc", "auroc", "loss"):
        shown = re.search(rf"test/{name}\s+\S\s+([0-9.]+)", out)
        assert shown is not None and float(shown.group(1)) == pytest.approx(record["metrics"][name], abs=1e-6)


@pytest.mark.slow
def test_a_multi_node_run_says_where_it_waits_and_gives_up(tmp_path):
    """``--trainer.num_nodes 2`` needs the first node's address and port; with them, a node whose peers never
    come says where it waits and stops after I2M2_NODE_TIMEOUT seconds with one line (not a hang)."""
    argv = [SCRIPT, *RUN, "--trainer.strategy", "ddp", "--trainer.num_nodes", "2", "--trainer.accelerator"]
    argv += ["cpu", "--out", str(tmp_path / "run")]
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK")}
    env |= {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert_one_line(done.returncode, done.stderr, "set MASTER_ADDR and MASTER_PORT")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "I2M2_NODE_TIMEOUT": "3"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == f"node 0 of 2: waiting for the other nodes to join at 127.0.0.1:{port} " + (
        "(gives up after 3 s; I2M2_NODE_TIMEOUT to change)"
    )
    assert lines[-1].startswith("i2m2 run: error: the other nodes did not join: Timed out")


def test_backbone_folders_of_the_wrong_kind_are_one_line(tiny_towers):
    """A text model given as the image tower (or the reverse) is named, not a transformers error."""
    from i2m2.errors import DataError
    from i2m2.models import backbones

    with pytest.raises(DataError, match="a 'bert' model, not an image model; expected a vision backbone"):
        backbones.vision_backbone(tiny_towers["text"])
    with pytest.raises(DataError) as info:
        backbones.text_backbone(tiny_towers["vision"])
    assert "no usable tokenizer" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.slow
def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """SIGINT while the command is still importing torch and Lightning, before any job: one line, exit 130."""
    process = subprocess.Popen(
        [SCRIPT, *RUN, "--out", str(tmp_path / "run")],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=tmp_path,
    )
    time.sleep(0.5)  # the command's own start is light (0.1 s); torch and Lightning load after it
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    lines = [line for line in err.strip().splitlines() if not PROGRESS.match(line)]  # on a slow machine
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("i2m2 run: "), err
