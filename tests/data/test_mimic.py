"""The MIMIC-III loader on small ``im.pk`` files in MultiBench's format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from i2m2.data.mimic import load_mimic, task_labels
from i2m2.errors import DataError
from tests.helpers.mimic import MORTALITY_ROWS, make_arrays, write_pickle


def row_ids(splits) -> dict[str, np.ndarray]:
    """Row numbers of each split, recovered from the (affinely transformed) ID feature."""
    values = {
        name: getattr(splits, name).inputs["timeseries"][:, 0, 0].double().numpy()
        for name in ("train", "val", "test")
    }
    everything = np.sort(np.concatenate(list(values.values())))
    return {name: np.searchsorted(everything, v) for name, v in values.items()}


def test_mortality_rule():
    adm = np.array([row for row, _ in MORTALITY_ROWS], dtype=np.float64)
    expected = [label for _, label in MORTALITY_ROWS]
    assert task_labels({"adm_labels_all": adm}, "mortality").tolist() == expected


@pytest.mark.parametrize(("task", "column"), [("icd9_140_239", 1), ("icd9_460_519", 7)])
def test_icd9_columns(tmp_path, task, column):
    arrays = make_arrays()
    path = write_pickle(tmp_path / "im.pk", arrays)
    splits = load_mimic(path, task)
    assert splits.num_classes == 2
    ids = row_ids(splits)
    for name in ("train", "val", "test"):
        expected = arrays["y_icd9"][ids[name], column]
        assert getattr(splits, name).labels.tolist() == expected.tolist()


def test_mortality_labels_follow_rows_through_the_split(tmp_path):
    arrays = make_arrays()
    splits = load_mimic(write_pickle(tmp_path / "im.pk", arrays), "mortality")
    assert splits.num_classes == 6
    ids = row_ids(splits)
    for name in ("train", "val", "test"):
        expected = [MORTALITY_ROWS[i % len(MORTALITY_ROWS)][1] for i in ids[name]]
        assert getattr(splits, name).labels.tolist() == expected


def test_split_sizes_disjoint_and_seeded(tmp_path):
    path = write_pickle(tmp_path / "im.pk", make_arrays(n=53))
    splits = load_mimic(path, "mortality", seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (43, 5, 5)
    ids = row_ids(splits)
    assert sorted(np.concatenate(list(ids.values())).tolist()) == list(range(53))
    assert load_mimic(path, "mortality", seed=0).test.labels.tolist() == splits.test.labels.tolist()
    again = row_ids(load_mimic(path, "mortality", seed=0))
    other = row_ids(load_mimic(path, "mortality", seed=1))
    assert all(np.array_equal(ids[k], again[k]) for k in ids)
    assert not np.array_equal(np.sort(ids["test"]), np.sort(other["test"]))
    assert (
        splits.train.inputs["static"].shape == (43, 5)
        and splits.train.inputs["static"].dtype == torch.float32
    )
    assert splits.train.inputs["timeseries"].shape == (43, 24, 12)


def test_normalization_uses_training_rows_only(tmp_path):
    arrays = make_arrays()
    path = tmp_path / "im.pk"
    before = load_mimic(write_pickle(path, arrays), "icd9_140_239")
    static = before.train.inputs["static"].double()
    assert torch.allclose(static.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(static.std(0, unbiased=False), torch.ones(5, dtype=torch.float64), atol=1e-5)
    # Change the validation and test rows wildly: the training tensors must not move.
    ids = row_ids(before)
    held_out = np.concatenate([ids["val"], ids["test"]])
    changed = {k: v.copy() for k, v in arrays.items()}
    changed["adm_features_all"][held_out] *= 1e6
    changed["ep_tdata"][held_out, :, 1:] += 1e6
    after = load_mimic(write_pickle(path, changed), "icd9_140_239")
    for modality in ("static", "timeseries"):
        assert torch.equal(after.train.inputs[modality], before.train.inputs[modality])
        assert not torch.equal(after.test.inputs[modality], before.test.inputs[modality])


def test_nan_and_inf_become_zero_before_scaling(tmp_path):
    arrays = make_arrays()
    arrays["adm_features_all"][:, 2] = np.nan
    arrays["ep_tdata"][:, 3, 4] = np.inf
    arrays["adm_features_all"][:, 3] = 7.0  # constant: left unscaled instead of dividing by zero
    splits = load_mimic(write_pickle(tmp_path / "im.pk", arrays), "mortality")
    for name in ("train", "val", "test"):
        for x in getattr(splits, name).inputs.values():
            assert torch.isfinite(x).all()
    assert torch.equal(splits.test.inputs["static"][:, 2], torch.zeros(5))  # all-NaN column -> all 0
    assert torch.equal(splits.train.inputs["static"][:, 3], torch.zeros(40))


def test_folder_or_file(tmp_path):
    write_pickle(tmp_path / "data" / "im.pk", make_arrays())
    a = load_mimic(tmp_path / "data", "mortality")
    b = load_mimic(tmp_path / "data" / "im.pk", "mortality")
    assert torch.equal(a.train.inputs["static"], b.train.inputs["static"])


def _drop(key: str):
    return lambda a: {k: v for k, v in a.items() if k != key}


def _replace(key: str, value):
    return lambda a: {**a, key: value(a)}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: list(a.values()), "expected a dict of arrays"),
        (_drop("ep_tdata"), "missing keys ['ep_tdata']"),
        (_replace("ep_tdata", lambda a: a["ep_tdata"][:, :, :11]), "'ep_tdata' must have shape (N, 24, 12)"),
        (
            _replace("adm_features_all", lambda a: a["adm_features_all"][:, :4]),
            "'adm_features_all' must have shape",
        ),
        (_replace("adm_labels_all", lambda a: a["adm_labels_all"][:, :5]), "at least 6 columns"),
        (_replace("y_icd9", lambda a: a["y_icd9"].tolist()), "'y_icd9' must be a numpy array, got list"),
        (_replace("y_icd9", lambda a: a["y_icd9"].astype(str)), "'y_icd9' must be numeric"),
        (_replace("y_icd9", lambda a: a["y_icd9"] * 2), "must hold 0/1"),
        (_replace("ep_tdata", lambda a: a["ep_tdata"][:-1]), "disagree on the number of rows"),
    ],
)
def test_bad_content_names_the_file(tmp_path, change, message):
    path = write_pickle(tmp_path / "im.pk", change(make_arrays()))
    with pytest.raises(DataError) as info:
        load_mimic(path, "icd9_140_239")
    assert str(path) in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"not a pickle at all", "not a readable pickle"),
        (pickle.dumps({"a": np.zeros(3)})[:-5], "not a readable pickle"),
    ],
)
def test_missing_or_corrupt_file(tmp_path, content, message):
    path = tmp_path / "im.pk"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_mimic(tmp_path, "mortality")
    assert str(path) in str(info.value) and message in str(info.value)


def test_too_few_rows_and_unknown_task(tmp_path):
    path = write_pickle(tmp_path / "im.pk", make_arrays(n=9))
    with pytest.raises(DataError, match="need at least 10"):
        load_mimic(path, "mortality")
    with pytest.raises(ValueError, match="unknown MIMIC task"):
        load_mimic(path, "los")
