"""The saved preprocessing: plain JSON that round-trips, a transform that zero-fills absent rows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from i2m2.errors import DataError
from i2m2.inference.preprocessing import InputTransform, ModalityInput, Preprocessing, Standardize


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    spec = ModalityInput((2,), "float32", Standardize([2.0, 1.0], [0.5, 0.0], [0.25, 1.0]))
    preprocessing = Preprocessing({"x": spec, "t": ModalityInput((3,), "int64")}, ["no", "yes"])
    preprocessing.save(tmp_path / "p.json")
    assert Preprocessing.load(tmp_path / "p.json") == preprocessing


def test_standardizes_as_the_features_reader_and_zero_fills_absent_rows() -> None:
    transform = InputTransform(
        ModalityInput((2,), "float32", Standardize([2.0, 1.0], [0.5, 0.0], [0.25, 1.0]))
    )
    x = torch.tensor([[2.0, 3.0], [float("nan"), 1.0]])
    out = transform(x, torch.tensor([True, False]))
    assert torch.equal(out, torch.tensor([[2.0, 3.0], [0.0, 0.0]]))


def test_a_foreign_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"format": 1, "inputs": {"x": {"shape": [2], "dtype": "object"}}}')
    with pytest.raises(DataError, match=r"p.json: not an i2m2 preprocessing record \(dtype 'object'"):
        Preprocessing.load(tmp_path / "p.json")


def test_statistics_broadcast_over_the_last_axis_and_steps_round_trip() -> None:
    spec = ModalityInput.from_plain(
        {
            "shape": [2, 3],
            "also_shapes": [[6]],
            "impute": 0.0,
            "standardize": {"scale": [1.0], "mean": [1.0, 2.0, 3.0], "std": [2.0, 2.0, 2.0]},
            "model_shape": [2, 3],
        },
        "t",
    )
    assert ModalityInput.from_plain(spec.to_plain(), "t") == spec
    x = torch.tensor([[[1.0, float("nan"), 5.0], [3.0, 2.0, float("inf")]]])
    out = InputTransform(spec)(x, torch.tensor([True]))
    assert torch.equal(out, torch.tensor([[[0.0, -1.0, 1.0], [1.0, 0.0, -1.5]]]))


def test_statistics_of_the_wrong_length_are_refused() -> None:
    plain = {"shape": [2, 3], "standardize": {"scale": [1.0], "mean": [0.0] * 4, "std": [1.0]}}
    with pytest.raises(ValueError, match=r"statistics of 't' do not match its shape \(2, 3\)"):
        ModalityInput.from_plain(plain, "t")
