"""``i2m2 predict RUN --method i2m2 --input FILE_OR_DIR --out predictions.csv``: a trained job on new data.

The input is the experiment's raw form as arrays: an ``.npz`` file with one array per modality (the
``features`` route's own files work as they are; a ``labels`` array is copied to the output), a folder
of ``<modality>.npy`` files, or the experiment's own files where its saved preprocessing names them (its
``reader``): AV-MNIST's folder layout (``image/NAME_data.npy``, ``audio/NAME_data.npy``,
``NAME_labels.npy``, with ``--split NAME``, default ``test``), MIMIC's ``im.pk`` (or its folder), an
easy-VQA folder (``questions.json`` of ``[question, answer, image id]`` and ``images/<id>.png``), fastMRI
``.h5`` volumes (a file or a folder of them; one row per slice, named by ``volume`` and ``slice``), NLVR2's
release layout (a folder with ``train.json``/``dev.json``/``test1.json`` and ``images/``, ``--split``
choosing the file, or one JSON-lines statements file; rows named by ``identifier``), VQA-VS's (a folder
with ``Training/``, ``Val/``, ``IID-Test/`` and ``images/``, or one ``*-Ques.json`` file; rows named by
``question_id`` and ``image_id``).
``--missing MODALITY`` predicts as if that modality were absent; all-NaN rows
mark it absent for single examples. The output has one row per example: the predicted class and each
class's probability.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
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
        "--input",
        type=Path,
        required=True,
        help="an .npz file, a folder of <modality>.npy, or the experiment's own files (fastMRI: .h5; "
        "NLVR2, VQA-VS: the release's folder or one statements/questions .json)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the CSV file to write")
    parser.add_argument("--missing", type=str, nargs="+", default=[], help="modalities to treat as absent")
    parser.add_argument(
        "--split",
        type=str,
        default="test",
        help="the NAME of files named by split (AV-MNIST's NAME_data.npy; NLVR2, VQA-VS: train, val, test "
        "or a file's own name, e.g. dev, test2, IID-Test)",
    )
    parser.add_argument("--batch_size", type=int, default=4096, help="examples per forward pass")
    values = parser.parse_args(underscored(argv, ["batch_size"]))
    predictor = load_predictor(values)
    reader = predictor.preprocessing.extra.get("reader") or _release_reader(predictor.about.get("experiment"))
    arrays, ids = read_inputs(values.input, reader, values.split, predictor.classes)
    labels = arrays.pop(LABELS, None)
    known = list(predictor.preprocessing.modalities)
    for modality in values.missing:
        if modality not in known:
            raise UserError(f"--missing: unknown modality '{modality}'; expected one of {known}")
        arrays.pop(modality, None)
    probabilities = predictor.predict(arrays, batch_size=values.batch_size)
    tasks = predictor.preprocessing.extra.get("tasks")
    write_csv(values.out, probabilities, predictor.classes, labels, ids, tasks)
    print(f"wrote {len(probabilities)} predictions to {values.out}", file=sys.stderr)
    return 0


def read_inputs(
    path: Path, reader: Any = None, split: str = "test", classes: list[str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, list[Any]] | None]:
    """The arrays of the experiment's own files (``reader``: plain data saved with the job), else of an
    ``.npz`` file or of a folder's ``<modality>.npy`` files (never unpickled); and the columns naming
    each row where the files name them (fastMRI's volume and slice, NLVR2's identifier, VQA's ids)."""
    kind = _kind(reader)
    if kind == "fastmri-h5":
        from i2m2.inference.pipelines import volume_files

        volumes = np.array([str(f) for f in volume_files(path)], dtype=object)
        return {str(m): volumes for m in reader["modalities"]}, _volume_slices(path)
    if kind == "nlvr2-statements":
        file = _own_file(path, reader, split, "{split}.json", NLVR2_LAYOUT)
        if file is not None:
            return _in_layout(_nlvr2_statements, file, NLVR2_LAYOUT)
    if kind == "vqa-vs-questions":
        file = _own_file(path, reader, split, "{split}/{split}-Ques.json", VQA_VS_LAYOUT)
        if file is not None:
            return _in_layout(_vqa_vs_questions, file, VQA_VS_LAYOUT)
    return _arrays(path, reader, split, classes), None


Examples = tuple[dict[str, np.ndarray], dict[str, list[Any]]]
NLVR2_LAYOUT = (
    "an NLVR2 folder (train.json, dev.json, test1.json: JSON lines; images/) or one statements .json"
)
VQA_VS_LAYOUT = "a VQA-VS folder (Training/, Val/, IID-Test/ with *-Ques.json; images/) or one *-Ques.json"


def _own_file(path: Path, reader: dict[str, Any], split: str, other: str, layout: str) -> Path | None:
    """The statements or questions file ``--input`` names: the file itself, or the ``--split`` file of a
    release folder (``reader["files"]`` maps train/val/test; another NAME is ``other`` formatted). ``None``
    where the input is model-ready arrays (``.npz``, ``.npy`` files); one-line error for anything else."""
    if path.is_file():
        if path.suffix.lower() in (".npz", ".npy"):
            return None
        if path.suffix.lower() in (".json", ".jsonl"):
            return path
        raise DataError(f"--input {path}: expected {layout}, or an .npz of model inputs")
    if path.is_dir():
        files = reader.get("files") or {}
        file = path / str(files[split] if split in files else other.format(split=split))
        if file.is_file():
            return file
        if any(path.glob("*.npy")):
            return None
        raise DataError(f"--input {path}: no {file.relative_to(path)} for --split {split}; expected {layout}")
    raise DataError(f"--input {path}: no such file or folder")


def _in_layout(read: Callable[[Path], Examples], file: Path, layout: str) -> Examples:
    """``read(file)``; the data module's one-line error for a file not in the layout, naming the option
    and the layout expected."""
    try:
        return read(file)
    except DataError as err:
        raise DataError(f"--input {err}; expected {layout}") from None


def _nlvr2_statements(file: Path) -> Examples:
    """Statements and (left, right) image paths of an NLVR2 file, read by the data module's reader."""
    from i2m2.data.nlvr2 import MODALITIES, read_nlvr2_file

    split = read_nlvr2_file(file, require_labels=False)
    pairs = np.array([[str(a), str(b)] for a, b in split.image_paths], dtype=object)
    images, statement = MODALITIES
    arrays = {images: pairs, statement: np.array(split.sentences, dtype=object)}
    if bool((split.labels >= 0).all()):
        arrays[LABELS] = split.labels.numpy()
    return arrays, {"identifier": split.identifiers}


def _vqa_vs_questions(file: Path) -> Examples:
    """Questions and COCO image paths of a VQA-VS questions file, read by the data module's readers; the
    images are in ``images/`` beside the file or one folder up (the release's ``ROOT/images``)."""
    from i2m2.data.vqa_vs import MODALITIES, image_path, read_questions

    questions = read_questions(file)
    folders = [file.parent / "images", file.parent.parent / "images"]
    images = next((f for f in folders if f.is_dir()), folders[-1])
    paths = {i: str(image_path(images, i)) for i in sorted(set(questions.image_ids))}
    image, question = MODALITIES
    arrays = {
        image: np.array([paths[i] for i in questions.image_ids], dtype=object),
        question: np.array(questions.questions, dtype=object),
    }
    return arrays, {"question_id": questions.question_ids, "image_id": questions.image_ids}


def _arrays(path: Path, reader: Any, split: str, classes: list[str] | None) -> dict[str, np.ndarray]:
    kind = _kind(reader)
    if kind == "vqa-questions" and (path / str(reader["questions"])).is_file():
        return _questions(path, reader, classes or [])
    if kind == "npy-files" and path.is_dir():
        arrays = _npy_layout(path, reader, split)
        if arrays:
            return arrays
    if kind == "pickle-arrays":
        file = path / str(reader["file"]) if path.is_dir() else path
        if file.is_file() and file.suffix.lower() not in (".npz", ".npy"):
            return _pickled_arrays(file, reader)
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise DataError(f"--input {path}: no <modality>.npy files in the folder")
        return {file.stem: _load_npy(file) for file in files}
    from i2m2.data.safe_npz import read_npz_arrays

    return read_npz_arrays(path, "one array per modality (and optionally 'labels')")


def _release_reader(experiment: Any) -> dict[str, Any] | None:
    """The reader of a built-in experiment whose jobs were saved before their records held one."""
    if experiment == "nlvr2":
        from i2m2.data.nlvr2 import READER

        return dict(READER)
    if experiment == "vqa-vs":
        from i2m2.data.vqa_vs import reader

        return reader()
    return None


def _kind(reader: Any) -> str | None:
    return str(reader.get("kind")) if isinstance(reader, dict) else None


def _volume_slices(path: Path) -> dict[str, list[Any]]:
    """The ``volume`` name and ``slice`` index of each row fastMRI volumes give (headers only)."""
    import h5py

    from i2m2.inference.pipelines import volume_files

    names: list[Any] = []
    slices: list[Any] = []
    for file in volume_files(path):
        try:
            with h5py.File(file, "r") as f:
                count = int(f["kspace"].shape[0])
        except (OSError, KeyError) as err:
            raise DataError(f"--input {file}: not a fastMRI volume with a 'kspace' dataset ({err})") from None
        names += [file.stem] * count
        slices += list(range(count))
    return {"volume": names, "slice": slices}


def _load_npy(file: Path) -> np.ndarray:
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"--input {file}: not a readable .npy array ({err})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"--input {file}: expected one .npy array, got {type(array).__name__}")
    return array


def _npy_layout(folder: Path, reader: dict[str, Any], split: str) -> dict[str, np.ndarray]:
    """The modalities (and labels) of ``split`` in a folder of the experiment's layout; a modality whose
    file is missing is absent. Empty when the folder holds none of the split's modality files."""
    named = {m: folder / str(f).format(split=split) for m, f in reader["modalities"].items()}
    arrays = {m: _load_npy(file) for m, file in named.items() if file.is_file()}
    labels = folder / str(reader.get("labels", "")).format(split=split)
    if arrays and reader.get("labels") and labels.is_file():
        arrays[LABELS] = _load_npy(labels).reshape(-1)
    return arrays


def _questions(folder: Path, reader: dict[str, Any], classes: list[str]) -> dict[str, np.ndarray]:
    """Question strings and image paths (and labels where the answers are known classes) of a folder in
    the easy-VQA package's layout."""
    import json

    file = folder / str(reader["questions"])
    try:
        rows = json.loads(file.read_text())
        questions = [str(r[0]) for r in rows]
        answers = [r[1] if len(r) == 3 else None for r in rows]
        ids = [int(r[-1]) for r in rows]
    except (OSError, ValueError, TypeError, IndexError, KeyError) as err:
        raise DataError(
            f"--input {file}: expected a JSON list of [question, answer, image id] ({err})"
        ) from None
    if not rows:
        raise DataError(f"--input {file}: no questions")
    images = [str(folder / str(reader["image"]).format(id=i)) for i in ids]
    arrays = {"question": np.array(questions, dtype=object), "image": np.array(images, dtype=object)}
    index = {c: i for i, c in enumerate(classes)}
    if all(a in index for a in answers):
        arrays[LABELS] = np.array([index[str(a)] for a in answers], dtype=np.int64)
    return arrays


def _pickled_arrays(file: Path, reader: dict[str, Any]) -> dict[str, np.ndarray]:
    """The modality arrays of a pickled dict (MIMIC's ``im.pk``), read with the restricted unpickler."""
    from i2m2.data.safe_pickle import safe_load_pickle

    keys = {m: str(k) for m, k in reader["modalities"].items()}
    data = safe_load_pickle(file)
    if not isinstance(data, dict):
        raise DataError(f"--input {file}: expected a dict of arrays with keys {sorted(keys.values())}")
    arrays = {m: data[k] for m, k in keys.items() if k in data}
    if not arrays:
        raise DataError(
            f"--input {file}: none of the keys {sorted(keys.values())}; found {sorted(map(str, data))}"
        )
    for m, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise DataError(f"--input {file}: '{keys[m]}' must be a numpy array, got {type(array).__name__}")
    return arrays


def write_csv(
    path: Path,
    probabilities: np.ndarray,
    classes: list[str],
    labels: np.ndarray | None,
    ids: dict[str, list[Any]] | None = None,
    tasks: list[str] | None = None,
) -> None:
    """One row per example: ``row``, any ``ids`` columns (fastMRI's volume and slice), ``label`` (when
    known), ``predicted`` and ``p_<class>`` per class; with several tasks (fastMRI's four findings)
    ``predicted_<task>`` and ``p_<task>_<class>`` per task."""
    multitask = probabilities.ndim == 3 and tasks is not None and len(tasks) == probabilities.shape[1]
    if probabilities.ndim != 2 and not multitask:
        raise UserError(
            f"--out: a CSV holds one task per example; this model predicts {probabilities.shape[1:]}"
        )
    ids = ids or {}
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    head = ["row", *ids, *(["label"] if labels is not None else [])]
    if multitask:
        assert tasks is not None
        per_task = [[f"predicted_{t}", *(f"p_{t}_{c}" for c in classes)] for t in tasks]
        writer.writerow([*head, *(column for columns in per_task for column in columns)])
    else:
        writer.writerow([*head, "predicted", *(f"p_{c}" for c in classes)])
    predicted = probabilities.argmax(-1)
    for i, row in enumerate(probabilities):
        label = [] if labels is None else [_name(int(labels[i]), classes)]
        start = [i, *(column[i] for column in ids.values()), *label]
        if multitask:
            cells = [[classes[predicted[i, t]], *(f"{p:.8g}" for p in row[t])] for t in range(len(row))]
            writer.writerow([*start, *(cell for task in cells for cell in task)])
        else:
            writer.writerow([*start, classes[predicted[i]], *(f"{p:.8g}" for p in row)])
    atomic_write_text(path, text.getvalue())


def _name(label: int, classes: list[str]) -> str:
    return classes[label] if 0 <= label < len(classes) else str(label)
