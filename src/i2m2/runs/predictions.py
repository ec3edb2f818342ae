"""Per-example test predictions of a run, saved next to ``results.json`` for later analysis.

One compressed ``.npz`` per (group, method, seed) under ``RUN_DIR/predictions/``; file name
``{group or "all"}__{method}__seed{seed}.npz`` with characters outside ``[A-Za-z0-9_.+-]`` replaced by "-"
(:func:`job_stem`; a name that replacement could confuse with another gets a hash of its exact text).
Arrays (float16 log-probabilities keep the files small):

* ``labels``: int64 ``(N,)`` true test labels;
* ``log_probs``: float16 ``(N, C)`` the method's normalized log p(y | x);
* ``expert__<name>``: float16 ``(N, C)`` each expert's own log_softmax (for I2M2/intra: the fine-tuned
  experts inside the product);
* ``withheld__<modality>``: float16 ``(N, C)`` the method's log p(y | x) with that modality withheld
  (its experts left out of the product), only for methods with more than one modality; a method with a
  null-token expert also has ``withheld__a+b`` (a subset withheld) for every subset
  :func:`~i2m2.models.subsets.withheld_subsets` names, since only a run can ask that expert again;
* ``groups``: int64 ``(N,)`` optional per-example group ids (names in ``results.json``'s
  ``config.group_names``), or bool ``(N, G)`` membership when an example can be in several groups
  (VQA-VS's nine OOD subsets);
* ``scores``: float32 ``(N,)`` optional per-example scores whose mean is the monitored metric, when the
  labels cannot give it (each question's VQA score); the verdicts resample them.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i2m2.atomic import atomic_write
from i2m2.errors import DataError

PREDICTIONS_DIR = "predictions"
# Names whose "-" replacement in job_stem is one-to-one (see there): a group of safe characters without
# "__" and not ending in "_" (so the first "__" of a stem ends the group; "all" stands for no group), and
# a method of the grammar: ``base``, ``base:modality`` or ``base[fusion]``.
SAFE_GROUP = re.compile(r"(?!all\Z)(?!.*__)[A-Za-z0-9_.+-]*(?<!_)")
GRAMMAR_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(:[A-Za-z0-9_]+|\[[A-Za-z0-9_.+-]+\])?")


@dataclass
class Predictions:
    """Test predictions of one (group, method, seed)."""

    labels: np.ndarray
    log_probs: np.ndarray
    experts: dict[str, np.ndarray] = field(default_factory=dict)
    withheld: dict[str, np.ndarray] = field(default_factory=dict)
    groups: np.ndarray | None = None
    scores: np.ndarray | None = None


def job_stem(group: str, method: str, seed: int) -> str:
    """The file name stem shared by a job's record, checkpoint and predictions; distinct jobs get
    distinct stems.

    Characters outside ``[A-Za-z0-9_.+-]`` become "-". That is one-to-one for the rows the method
    grammar makes (``unimodal:<modality>``, ``inter[<fusion>]``: modality names are identifiers,
    :func:`~i2m2.models.validation.check_modality_names`) and for groups of safe characters, so their
    stems stay readable and those of earlier runs still resume. Any other group or method (``a/b`` and
    ``a:b`` would both read ``a-b``) gets ``-`` plus a hash of the exact text appended.
    """
    text = f"{group or 'all'}__{method}__seed{seed}"
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "-", text)
    if SAFE_GROUP.fullmatch(group) and GRAMMAR_METHOD.fullmatch(method):
        return stem
    return f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def predictions_path(run_dir: Path, group: str, method: str, seed: int) -> Path:
    return Path(run_dir) / PREDICTIONS_DIR / f"{job_stem(group, method, seed)}.npz"


def save_predictions(path: Path, predictions: Predictions) -> None:
    """Write atomically (a temp file in the same folder, then a rename)."""
    arrays: dict[str, np.ndarray] = {
        "labels": predictions.labels.astype(np.int64),
        "log_probs": predictions.log_probs.astype(np.float16),
    }
    arrays |= {f"expert__{k}": v.astype(np.float16) for k, v in predictions.experts.items()}
    arrays |= {f"withheld__{k}": v.astype(np.float16) for k, v in predictions.withheld.items()}
    if predictions.groups is not None:
        membership = predictions.groups.ndim == 2
        arrays["groups"] = predictions.groups.astype(bool if membership else np.int64)
    if predictions.scores is not None:
        arrays["scores"] = predictions.scores.astype(np.float32)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))  # type: ignore[arg-type]


def load_predictions(path: Path) -> Predictions:
    """Read one predictions file; a :class:`DataError` naming the file if it is missing or damaged."""
    if not Path(path).is_file():
        raise DataError(f"{path}: predictions file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable predictions file ({err})") from err
    for key in ("labels", "log_probs"):
        if key not in arrays:
            raise DataError(f"{path}: predictions file lacks '{key}'")
    n = len(arrays["labels"])
    for key, value in arrays.items():
        if len(value) != n:
            raise DataError(f"{path}: '{key}' has {len(value)} rows, labels have {n}")
    return Predictions(
        labels=arrays["labels"],
        log_probs=arrays["log_probs"].astype(np.float32),
        experts={k[8:]: v.astype(np.float32) for k, v in arrays.items() if k.startswith("expert__")},
        withheld={k[10:]: v.astype(np.float32) for k, v in arrays.items() if k.startswith("withheld__")},
        groups=arrays.get("groups"),
        scores=arrays.get("scores"),
    )
