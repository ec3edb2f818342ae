"""``i2m2 predict RUN --method i2m2 --input FILE_OR_DIR --out predictions.csv``: a trained job on new data.

The input is the experiment's raw form as arrays: an ``.npz`` file with one array per modality (the
``features`` route's own files work as they are; a ``labels`` array is copied to the output), or a folder
of ``<modality>.npy`` files. ``--missing MODALITY`` predicts as if that modality were absent; all-NaN rows
mark it absent for single examples. The output has one row per example: the predicted class and each
class's probability.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
from jsonargparse import ArgumentParser, Namespace

from i2m2.atomic import atomic_write_text
from i2m2.cli.dashes import underscored
from i2m2.errors import DataError, UserError

LABELS = "labels"


def model_parser(prog: str, description: str) -> ArgumentParser:
    """The options every command on a trained job shares: which run, method, seed and group."""
    parser = ArgumentParser(prog=prog, exit_on_error=False, description=description)
    parser.add_argument("run_dir", type=Path, help="a folder written by 'i2m2 run'")
    parser.add_argument("--method", type=str, default="i2m2", help="the row: i2m2, intra, unimodal:<m>, ...")
    parser.add_argument(
        "--seed", type=int | None, default=None, help="default: the seed with the best validation metric"
    )
    parser.add_argument("--group", type=str | None, default=None, help="default: the run's only group")
    return parser


def load_predictor(values: Namespace) -> Any:
    from i2m2.inference.loading import load_model

    predictor = load_model(values.run_dir, values.method, values.seed, values.group)
    print(f"{predictor!r}; {predictor.selection}", file=sys.stderr)
    return predictor


def predict_command(argv: list[str]) -> int:
    parser = model_parser("i2m2 predict", "Predict class probabilities of new examples with a trained job.")
    parser.add_argument(
        "--input", type=Path, required=True, help="an .npz file or a folder of <modality>.npy"
    )
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--missing", type=str, nargs="+", default=[], help="modalities to treat as absent")
    parser.add_argument("--batch_size", type=int, default=4096, help="examples per forward pass")
    values = parser.parse_args(underscored(argv, ["batch_size"]))
    predictor = load_predictor(values)
    arrays = read_inputs(values.input)
    labels = arrays.pop(LABELS, None)
    known = list(predictor.preprocessing.modalities)
    for modality in values.missing:
        if modality not in known:
            raise UserError(f"--missing: unknown modality '{modality}'; expected one of {known}")
        arrays.pop(modality, None)
    probabilities = predictor.predict(arrays, batch_size=values.batch_size)
    write_csv(values.out, probabilities, predictor.classes, labels)
    print(f"wrote {len(probabilities)} predictions to {values.out}", file=sys.stderr)
    return 0


def read_inputs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file or of a folder's ``<modality>.npy`` files (never unpickled)."""
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise DataError(f"--input {path}: no <modality>.npy files in the folder")
        arrays = {}
        for file in files:
            try:
                arrays[file.stem] = np.load(file, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataError(f"--input {file}: not a readable .npy array ({err})") from None
        return arrays
    from i2m2.data.safe_npz import read_npz_arrays

    return read_npz_arrays(path, "one array per modality (and optionally 'labels')")


def write_csv(path: Path, probabilities: np.ndarray, classes: list[str], labels: np.ndarray | None) -> None:
    """One row per example: ``row``, ``label`` (when known), ``predicted`` and ``p_<class>`` per class."""
    if probabilities.ndim != 2:
        raise UserError(
            f"--out: a CSV holds one task per example; this model predicts {probabilities.shape[1:]}"
        )
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["row", *(["label"] if labels is not None else []), "predicted", *(f"p_{c}" for c in classes)]
    )
    predicted = probabilities.argmax(1)
    for i, row in enumerate(probabilities):
        label = [] if labels is None else [_name(int(labels[i]), classes)]
        writer.writerow([i, *label, classes[predicted[i]], *(f"{p:.8g}" for p in row)])
    atomic_write_text(path, text.getvalue())


def _name(label: int, classes: list[str]) -> str:
    return classes[label] if 0 <= label < len(classes) else str(label)
