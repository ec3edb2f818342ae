"""fastMRI+ knee annotations -> multi-label slice labels [ACL, meniscus tear, cartilage, other].

Files (fastMRI+ ``Annotations/``):

* ``knee.csv``: header ``file,slice,study_level,x,y,width,height,label``; one row per bounding box.
  Labels may carry trailing spaces (``"Joint Effusion "``), so they are stripped before matching.
* ``knee_file_list.csv``: no header, one volume name per line (``file1000001``, ``.h5`` optional): the
  volumes the radiologists reviewed. A listed volume absent from ``knee.csv`` had no findings.

Rules (the authors'): a label containing ``"ACL"`` -> ACL; exactly ``"Meniscus Tear"`` -> meniscus;
containing ``"Cartilage"`` -> cartilage; every other finding -> other.

Study-level rows (``study_level == "Yes"``, empty ``slice``) describe the whole exam without saying where;
they are *not* spread over the slices (that would mark every slice of the knee, most of which do not
show the finding), so they add no slice label. They are still checked: their file must be listed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from i2m2.errors import DataError

FASTMRI_FINDINGS = ("acl", "meniscus", "cartilage", "other")
KNEE_CSV_COLUMNS = ("file", "slice", "study_level", "x", "y", "width", "height", "label")


def finding_index(label: str) -> int:
    """Column of ``label`` in :data:`FASTMRI_FINDINGS` by the authors' rules (checked in this order)."""
    label = label.strip()
    if "ACL" in label:
        return 0
    if label == "Meniscus Tear":
        return 1
    if "Cartilage" in label:
        return 2
    return 3


def volume_name(entry: str) -> str:
    """``file1000001.h5`` or ``file1000001`` -> ``file1000001``."""
    entry = entry.strip()
    return entry[:-3] if entry.endswith(".h5") else entry


def read_file_list(path: Path) -> list[str]:
    """The reviewed volumes of ``knee_file_list.csv``, in file order, without duplicates."""
    try:
        with open(path, newline="") as f:
            names = [volume_name(row[0]) for row in csv.reader(f) if row and row[0].strip()]
    except OSError as err:
        raise DataError(f"{path}: cannot read the fastMRI+ file list ({err})") from err
    if not names:
        raise DataError(f"{path}: expected one volume name per line, found none")
    return list(dict.fromkeys(names))


def slice_labels(
    knee_csv: Path, file_list: list[str], num_slices: Mapping[str, int]
) -> dict[str, np.ndarray]:
    """Per volume of ``num_slices``, an int64 ``(slices, 4)`` 0/1 array of the findings per slice.

    Args:
        knee_csv: the fastMRI+ ``knee.csv``.
        file_list: the reviewed volumes (:func:`read_file_list`); a row naming another file is an error.
        num_slices: the volumes to label (those found on disk) and their slice counts. Rows of listed
            volumes that are not here are skipped (e.g. the other fastMRI folder was not downloaded).

    Raises:
        DataError: a missing column, a row naming an unlisted file, a slice that is not an integer in
            ``0..slices-1``; the message names ``knee_csv`` and the row.
    """
    listed = set(file_list)
    labels = {name: np.zeros((n, len(FASTMRI_FINDINGS)), dtype=np.int64) for name, n in num_slices.items()}
    try:
        with open(knee_csv, newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in KNEE_CSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{knee_csv}: missing column(s) {missing}; expected {list(KNEE_CSV_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                _add_row(knee_csv, line, row, listed, labels)
    except OSError as err:
        raise DataError(f"{knee_csv}: cannot read the fastMRI+ annotations ({err})") from err
    return labels


def _add_row(
    knee_csv: Path, line: int, row: Mapping[str, str | None], listed: set[str], labels: dict[str, np.ndarray]
) -> None:
    name = volume_name(row["file"] or "")
    if name not in listed:
        raise DataError(f"{knee_csv} line {line}: file '{name}' is not in the fastMRI+ file list")
    slice_text = (row["slice"] or "").strip()
    if (row["study_level"] or "").strip().lower() == "yes" or not slice_text:
        return  # study-level finding: no slice (see the module docstring)
    if name not in labels:
        return  # listed but not on disk
    try:
        index = int(float(slice_text))
    except ValueError:
        raise DataError(f"{knee_csv} line {line}: slice '{slice_text}' is not an integer") from None
    count = len(labels[name])
    if not 0 <= index < count:
        raise DataError(
            f"{knee_csv} line {line}: slice {index} of '{name}' is out of range (the volume has {count})"
        )
    labels[name][index, finding_index(row["label"] or "")] = 1
