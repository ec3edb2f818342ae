"""fastMRI+ slice labels from the annotation CSV and the file list; bad rows name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from i2m2.data.fastmri import FASTMRI_FINDINGS
from i2m2.data.fastmri_labels import finding_index, read_file_list, slice_labels
from i2m2.data.fastmri_phantom import LABELS
from i2m2.errors import DataError


def test_label_rules_on_a_hand_written_knee_csv(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text("file1\nfile2.h5\nfile3\n")
    (tmp_path / "knee.csv").write_text(
        "file,slice,study_level,x,y,width,height,label\n"
        "file1,0,No,1,2,3,4,Ligament - ACL High Grade Sprain\n"
        "file1,0,No,1,2,3,4,Meniscus Tear \n"  # trailing space: still exactly "Meniscus Tear"
        "file1,1,No,1,2,3,4,Cartilage - Full Thickness loss/defect\n"
        "file1,2,No,1,2,3,4,Joint Effusion \n"
        "file1,2,No,1,2,3,4,Meniscus Tear - Complex\n"  # not exactly "Meniscus Tear": other
        "file2,1,No,1,2,3,4,Ligament - ACL Low Grade sprain\n"
        "file2,,Yes,,,,,Cartilage - Partial Thickness loss/defect\n"  # study level: no slice label
    )
    names = read_file_list(tmp_path / "list.csv")
    assert names == ["file1", "file2", "file3"]
    labels = slice_labels(tmp_path / "knee.csv", names, {"file1": 3, "file2": 2, "file3": 2})
    np.testing.assert_array_equal(labels["file1"], [[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(labels["file2"], [[0, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(labels["file3"], np.zeros((2, 4)))  # listed, no rows: no findings
    assert [finding_index(label) for label in LABELS.values()] == [1, 2, 0, 3]
    assert FASTMRI_FINDINGS == ("acl", "meniscus", "cartilage", "other")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("file9,0,No,1,2,3,4,Meniscus Tear", "file 'file9' is not in the fastMRI\\+ file list"),
        ("file1,3,No,1,2,3,4,Meniscus Tear", "slice 3 of 'file1' is out of range \\(the volume has 3\\)"),
        ("file1,x,No,1,2,3,4,Meniscus Tear", "slice 'x' is not an integer"),
    ],
)
def test_bad_annotation_rows_name_the_file_and_line(tmp_path: Path, row: str, match: str) -> None:
    knee = tmp_path / "knee.csv"
    knee.write_text(f"file,slice,study_level,x,y,width,height,label\n{row}\n")
    with pytest.raises(DataError, match=f"{knee} line 2: {match}"):
        slice_labels(knee, ["file1"], {"file1": 3})
