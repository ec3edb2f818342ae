"""A run folder: where ``i2m2 run`` keeps everything, and the only code that knows its layout.

::

    run.json                                  what was run: experiment, options, resolved recipe, and a
                                              hash of what decides how jobs train (``--resume`` checks it)
    .i2m2.lock                                held by the run writing here (its pid and host)
    results.json  results.csv  results.md     the tables (results.json is the stable contract)
    results.png                               the chart
    jobs/<group>__<method>__seed<k>.json      one finished job's record (test metrics, epochs, wall time)
    checkpoints/<stem>.ckpt                   its best epoch (the model's state_dict under ``model.`` and
                                              plain hyperparameters, loadable with weights_only=True)
    checkpoints/<stem>.inputs.json            its preprocessing: raw input shapes, dtypes, statistics and
                                              class names (what i2m2.load_model needs besides weights)
    logs/<stem>/metrics.csv                   its learning curve (Lightning's CSVLogger)
    predictions/<stem>.npz                    its per-example test predictions
    analysis/                                 what ``i2m2 analyze`` writes

A folder belongs to one run: a new run refuses a folder holding files it did not write, ``--resume``
refuses one whose run.json records another experiment, recipe or options, and a second run into a folder
in use stops at the lock. Under multi-process DDP only the first process checks, locks and writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only

from i2m2.atomic import atomic_write_text, save_checkpoint
from i2m2.errors import DataError, UserError
from i2m2.runs.fingerprint import fingerprint_changes
from i2m2.runs.plots import bar_chart
from i2m2.runs.predictions import Predictions, job_stem, predictions_path, save_predictions
from i2m2.runs.results import write_results

MODEL_PREFIX = "model."  # the LightningModule holds the I2M2 model as ``self.model``
RECORD = "run.json"
LOCK = ".i2m2.lock"
LAYOUT = frozenset(
    {RECORD, LOCK, "results.json", "results.csv", "results.md", "results.png"}
    | {"jobs", "checkpoints", "logs", "predictions", "analysis"}
)
# What an interrupted write leaves: atomic_write's temp files and prepare's write probes.
LEFTOVER = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$|^\.write-test-\d+$")
# Keys of results.json's config that decide how a job trains: a resumed run must match them.
IDENTITY_KEYS = (
    "modalities",
    "num_classes",
    "groups",
    "fusions",
    "recipe",
    "max_epochs_override",
    "from_scratch",
    "prior_correction",
    "all_subsets",
    "data_dir",
)
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def writes_files() -> bool:
    """Whether this process is the one that writes the run folder (rank 0 of a multi-process run).

    Decided from the environment too: a process of a second node starts with only ``NODE_RANK`` set,
    before Lightning knows its rank.
    """
    if getattr(rank_zero_only, "rank", 0) != 0:
        return False
    for name in RANK_VARIABLES:
        try:
            if int(os.environ.get(name, "0") or 0) != 0:
                return False
        except ValueError:
            continue
    return True


def run_record(
    experiment: str,
    config: dict[str, Any],
    options: dict[str, Any] | None = None,
    data: dict[str, str] | None = None,
) -> dict[str, Any]:
    """run.json's content: what decides how jobs train (``identity``, hashed) and what this run covers.

    Args:
        experiment: the experiment's name.
        config: results.json's ``config`` (see :meth:`i2m2.orchestration.comparison.Comparison.config`).
        options: the experiment factory's own options (``--n_train``, ``--tasks``), when known.
        data: the fingerprint of the files read (:func:`i2m2.runs.fingerprint.data_fingerprint`).
    """
    identity: dict[str, Any] = {"experiment": experiment, "experiment_options": options or {}}
    identity["data"] = data
    identity |= {k: config.get(k) for k in IDENTITY_KEYS}
    if identity["data_dir"] is not None:
        identity["data_dir"] = str(Path(identity["data_dir"]).resolve())
    identity["precision"] = str((config.get("trainer") or {}).get("precision", "32-true"))
    identity = plain(identity)
    digest = identity_hash(identity)
    scope = {k: config.get(k) for k in ("seeds", "methods", "trainer")}
    return {"identity": identity, "hash": digest, "scope": plain(scope)}


def plain(value: Any) -> Any:
    """``value`` as plain JSON values: paths and other objects as text, tuples as lists (what a record or a
    checkpoint loaded with ``weights_only=True`` can hold)."""
    return json.loads(json.dumps(value, default=str))


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """``key: was X, now Y`` for each leaf where two records differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{where}.{key}" if where else str(key))
        return out
    return [] if old == new else [f"{where or 'record'} was {old!r}, now {new!r}"]


def read_model_weights(path: Path) -> dict[str, torch.Tensor]:
    """The I2M2 model's state_dict from a job's checkpoint; a :class:`DataError` naming a bad file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["state_dict"]
    except Exception as err:  # truncated, foreign or not a checkpoint at all
        raise DataError(
            f"{path}: not a readable i2m2 checkpoint ({type(err).__name__}); delete it and its job record "
            "to rerun the job"
        ) from err
    return {k.removeprefix(MODEL_PREFIX): v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinities as ``None`` (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _record_problem(data: Any, expected: dict[str, Any] | None) -> str | None:
    """Why a job record cannot be trusted, or ``None``."""
    if not isinstance(data, dict):
        return "not a JSON object"
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return "no metrics"
    bad = sorted(
        k
        for k, v in metrics.items()
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
    )
    if bad:
        return f"metric(s) {bad} are not numbers"
    for key, value in (expected or {}).items():
        if data.get(key) != value:
            return f"{key} is {data.get(key)!r}, expected {value!r}"
    return None


class RunFolder:
    """Reads and writes one run folder (see the module docstring for the layout).

    Args:
        path: the folder.
        resume: continue a run already there instead of refusing to write into it.
    """

    def __init__(self, path: Path | str, resume: bool = False) -> None:
        if str(path).strip() == "":
            raise UserError("--out: expected a folder path, got ''")
        self.path = Path(path)
        self.resume = resume
        self._lock_text: str | None = None  # what this process wrote into the lock it holds
        self._record: dict[str, Any] | None = None  # run.json's new content, written with the results
        self.unreadable: dict[str, str] = {}  # job stem -> why its record is not trusted (it reruns)

    @property
    def jobs(self) -> Path:
        return self.path / "jobs"

    def prepare(self, record: dict[str, Any] | None = None) -> None:
        """Take the folder for this run: create it, lock it, check whose it is, clean leftovers.

        Refuses a folder holding files i2m2 did not write, one that holds a run unless resuming, and,
        when resuming, one whose run.json records another run (``record``: :func:`run_record`). Writes
        ``record`` to run.json with the first finished job and again with the results, so a run refused or
        failing before it finished anything leaves the folder as it was (and its rerun needs no
        ``--resume``). Only the writing process (:func:`writes_files`) checks or writes.
        """
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path}: exists and is not a folder")
        if not writes_files():
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--out {self.path}: not writable ({err.strerror or err})") from err
        self._take_lock()
        try:
            self._check_owner(record)
            self.jobs.mkdir(exist_ok=True)
            if self.resume:
                self._clean_leftovers()
            self._record = record
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Give the lock back (when this process holds it)."""
        if self._lock_text is None:
            return
        lock = self.path / LOCK
        try:
            if lock.read_text() == self._lock_text:
                lock.unlink()
        except OSError:
            pass
        self._lock_text = None

    def _take_lock(self) -> None:
        lock = self.path / LOCK
        text = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder(lock)
                if holder is not None:
                    raise UserError(
                        f"--out {self.path}: in use by another i2m2 run ({holder}); wait for it to finish "
                        f"or choose another folder (if no run is active, delete {lock})"
                    ) from None
                lock.unlink(missing_ok=True)  # left by a process that no longer runs
                continue
            except OSError as err:
                raise UserError(f"--out {self.path}: not writable ({err.strerror or err})") from err
            with os.fdopen(fd, "w") as f:
                f.write(text)
            self._lock_text = text
            return
        raise UserError(f"--out {self.path}: could not take the lock {lock}; is another run starting?")

    @staticmethod
    def _lock_holder(lock: Path) -> str | None:
        """Who holds ``lock``, or ``None`` when its process is gone (a stale lock)."""
        try:
            text = lock.read_text()
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError:
            return "lock unreadable"
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return None if age > 10 else "a run starting now"  # killed between creating and writing it
        pid, host = int(parts[0]), parts[1]
        if host != socket.gethostname():
            return f"pid {pid} on {host}"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's
        return f"pid {pid}"

    def _check_owner(self, record: dict[str, Any] | None) -> None:
        entries = [p for p in self.path.iterdir() if p.name != LOCK and not LEFTOVER.match(p.name)]
        previous = self.path / RECORD
        has_jobs = self.jobs.is_dir() and any(self.jobs.glob("*.json"))
        if (previous.exists() or has_jobs) and not self.resume:
            raise UserError(
                f"--out {self.path}: already holds a run; pass --resume to continue it, "
                "or choose another folder"
            )
        if previous.exists():
            if record is not None:
                self._check_same_run(self._read_record(), record)
            return
        if has_jobs:
            raise UserError(
                f"--resume {self.path}: holds finished jobs but no {RECORD} (deleted?), so nothing "
                "says which run they belong to; choose another --out (or restore the file)"
            )
        # Folders of the layout may hold what a run that finished no job left (fit replaces it); a file
        # here without run.json, such as a results.csv, is someone else's.
        foreign = sorted(p.name for p in entries if not (p.is_dir() and p.name in LAYOUT))
        if foreign:
            listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise UserError(
                f"--out {self.path}: holds files i2m2 did not write ({listed}); choose a new or empty folder"
            )

    def _check_same_run(self, previous: dict[str, Any], record: dict[str, Any]) -> None:
        """Refuse to resume a folder whose run.json was edited or records another run (naming what)."""
        path = self.path / RECORD
        if previous.get("hash") != identity_hash(previous["identity"]):
            raise UserError(
                f"--resume {path}: edited by hand (its hash does not match its content), so its "
                "jobs cannot be checked against this run; choose another --out"
            )
        old, new = previous["identity"], record["identity"]
        found = [f"data: {', '.join(fingerprint_changes(old.get('data'), new.get('data')))}"]
        found = found if old.get("data") != new.get("data") else []
        found += differences({**old, "data": None}, {**new, "data": None})
        if found:
            shown = "; ".join(found[:3]) + (f"; and {len(found) - 3} more" if len(found) > 3 else "")
            raise UserError(
                f"--resume {self.path}: the folder holds another run ({shown}); resume it with its own "
                "experiment, options and data, or choose another --out"
            )

    def _read_record(self) -> dict[str, Any]:
        path = self.path / RECORD
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: not a readable run record ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("identity"), dict):
            raise DataError(f"{path}: expected a run record with 'identity'")
        return data

    def _write_record(self, record: dict[str, Any]) -> None:
        path = self.path / RECORD
        text = json.dumps(record, indent=2, default=str) + "\n"
        if not (path.is_file() and path.read_text() == text):
            atomic_write_text(path, text)

    def _clean_leftovers(self) -> list[Path]:
        """Remove the temp files of writes that a killed run left half done."""
        removed = []
        for folder, _, files in os.walk(self.path):
            for name in files:
                if LEFTOVER.match(name):
                    path = Path(folder) / name
                    path.unlink(missing_ok=True)
                    removed.append(path)
        return removed

    def stem(self, group: str, method: str, seed: int) -> str:
        return job_stem(group, method, seed)

    def checkpoint(self, stem: str) -> Path:
        return self.path / "checkpoints" / f"{stem}.ckpt"

    def log_dir(self, stem: str) -> Path:
        return self.path / "logs" / stem

    def finished_job(self, stem: str, expected: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The record of a job finished earlier (with its checkpoint), or ``None`` when it must run (again).

        A record that cannot be read, holds no finite metrics or names another job is not trusted: the
        job runs again, and :attr:`unreadable` says why (the driver prints it). A folder where the record
        should be is refused.
        """
        record = self.jobs / f"{stem}.json"
        if record.is_dir():
            raise UserError(f"--resume {record}: a folder where a job record belongs; remove it and resume")
        if not (record.is_file() and self.checkpoint(stem).is_file()):
            return None
        problem = None
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            data, problem = None, f"not JSON ({type(err).__name__})"
        if problem is None:
            problem = _record_problem(data, expected)
        if problem is not None:
            self.unreadable[stem] = f"{record.name} unreadable ({problem}): it will be run again"
            return None
        return data

    def save_job(self, stem: str, record: dict[str, Any]) -> None:
        if self._record is not None and not (self.path / RECORD).exists():
            self._write_record(self._record)  # before the first job record: what the jobs belong to
        # strict JSON: an undefined metric (NaN, e.g. AUROC of a one-class split) is written as null
        atomic_write_text(
            self.jobs / f"{stem}.json", json.dumps(_strict(record), indent=2, allow_nan=False) + "\n"
        )

    def load_weights(self, stem: str) -> dict[str, torch.Tensor]:
        """A finished job's model weights (the I2M2 model's state_dict)."""
        return read_model_weights(self.checkpoint(stem))

    def save_checkpoint(
        self, stem: str, state_dict: dict[str, torch.Tensor], hyper_parameters: dict[str, Any]
    ) -> None:
        """The job's best weights as a Lightning-style checkpoint (the model's keys under ``model.``):
        a state_dict and plain hyperparameters, loadable with ``weights_only=True``."""
        import lightning

        prefixed = {MODEL_PREFIX + k: v for k, v in state_dict.items()}
        # Lightning's own loaders (i2m2 test --ckpt_path) check the version that wrote a checkpoint.
        version = {"pytorch-lightning_version": lightning.__version__}
        save_checkpoint(self.checkpoint(stem), prefixed, plain(hyper_parameters), **version)

    def save_preprocessing(self, stem: str, preprocessing: dict[str, Any]) -> None:
        """What turns raw inputs into the job's model inputs (plain JSON beside its checkpoint; see
        :mod:`i2m2.inference.preprocessing`)."""
        atomic_write_text(self.checkpoint(stem).with_suffix(".inputs.json"), json.dumps(preprocessing) + "\n")

    def save_curve(self, stem: str, curve: str) -> None:
        """The job's learning curve (Lightning's CSVLogger's ``metrics.csv``); nothing when it is empty."""
        target = self.log_dir(stem) / "metrics.csv"
        if curve:
            atomic_write_text(target, curve)
        else:
            target.unlink(missing_ok=True)  # a stale curve of an interrupted run of this job

    def save_predictions(self, group: str, method: str, seed: int, predictions: Predictions) -> None:
        save_predictions(predictions_path(self.path, group, method, seed), predictions)

    def write_results(
        self,
        experiment: str,
        rows: list[dict[str, Any]],
        config: dict[str, Any],
        monitor: str,
        title: str,
        levels: dict[str, dict[str, float]] | None = None,
    ) -> dict[str, Any]:
        """results.json/.csv/.md and the chart (with chance and majority lines when ``levels`` has them,
        per group); returns results.json's content."""
        results = write_results(self.path, experiment, rows, config)
        if self._record is not None:  # a resumed run may cover more seeds or methods than it did
            self._write_record(self._record)
        bar_chart(rows, self.path / "results.png", monitor, title, levels)
        return results
