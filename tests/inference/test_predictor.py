"""load_model + predict on a real run: the saved preprocessing reproduces training's inputs, any modality
may be missing, and bad input is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2 import load_model
from i2m2.data.features import load_features
from i2m2.errors import UserError
from i2m2.inference.preprocessing import Preprocessing


def test_preprocessing_is_saved_beside_each_checkpoint_as_plain_json(features_run: tuple[Path, Path]) -> None:
    run, _ = features_run
    checkpoints = sorted((run / "checkpoints").glob("*.ckpt"))
    for checkpoint in checkpoints:
        saved = json.loads(checkpoint.with_suffix(".inputs.json").read_text())
        assert (
            saved["inputs"]["a"]["shape"] == [2, 3] and len(saved["inputs"]["a"]["standardize"]["mean"]) == 6
        )
        assert saved["classes"] == ["0", "1", "2"]
        assert Preprocessing.from_plain(saved, "x").to_plain() == saved


def test_seed_none_takes_the_best_validation_seed_and_says_so(features_run: tuple[Path, Path]) -> None:
    run, _ = features_run
    predictor = load_model(run, method="i2m2[late]")
    assert predictor.about["seed"] in (0, 1) and "best validation acc" in predictor.selection
    assert load_model(run, method="i2m2[late]", seed=1).about["seed"] == 1


def test_predictions_match_the_model_on_the_loaders_own_inputs(features_run: tuple[Path, Path]) -> None:
    run, data = features_run
    predictor = load_model(run, method="i2m2[late]", seed=0)
    raw = np.load(data / "test.npz")
    splits = load_features(data, 0, 3)
    model = predictor.graph.model
    with torch.no_grad():
        expected = model(dict(splits.test.inputs)).exp().numpy()
        without_b = model({"a": splits.test.inputs["a"]}, allow_missing=True).exp().numpy()
    got = predictor.predict({"a": raw["a"], "b": raw["b"]})
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(predictor.predict({"a": raw["a"]}), without_b, atol=1e-5)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_nan_rows_and_masks_leave_a_modalitys_experts_out_for_those_examples(
    features_run: tuple[Path, Path],
) -> None:
    run, data = features_run
    predictor = load_model(run, method="i2m2[late]", seed=0)
    raw = np.load(data / "test.npz")
    b = raw["b"].copy()
    b[::2] = np.nan
    probabilities, experts = predictor.predict({"a": raw["a"], "b": b}, experts=True)
    alone = predictor.predict({"a": raw["a"]})
    both = predictor.predict({"a": raw["a"], "b": raw["b"]})
    np.testing.assert_allclose(probabilities[::2], alone[::2], atol=1e-6)
    np.testing.assert_allclose(probabilities[1::2], both[1::2], atol=1e-6)
    assert np.isnan(experts["b"][::2]).all() and np.isnan(experts["inter"][::2]).all()
    assert np.isfinite(experts["a"]).all()
    mask = np.arange(len(b)) % 2 == 1
    masked = predictor.predict({"a": raw["a"], "b": raw["b"]}, present={"b": mask})
    np.testing.assert_allclose(masked, probabilities, atol=1e-6)


def test_null_token_fusion_still_reads_the_present_modality(features_run: tuple[Path, Path]) -> None:
    run, data = features_run
    predictor = load_model(run, method="i2m2[null-token]", seed=0)
    raw = np.load(data / "test.npz")
    _, experts = predictor.predict({"a": raw["a"]}, experts=True)
    assert np.isfinite(experts["inter"]).all() and np.isnan(experts["b"]).all()
    splits = load_features(data, 0, 3)
    with torch.no_grad():  # the branch-free graph gives what the model's own forward gives
        expected = predictor.graph.model({"a": splits.test.inputs["a"]}, allow_missing=True).exp().numpy()
    np.testing.assert_allclose(predictor.predict({"a": raw["a"]}), expected, atol=1e-5)


def test_a_unimodal_model_ignores_the_modalities_it_does_not_read(features_run: tuple[Path, Path]) -> None:
    run, data = features_run
    raw = np.load(data / "test.npz")
    predictor = load_model(run, method="unimodal:a", seed=1)
    np.testing.assert_allclose(
        predictor.predict({"a": raw["a"], "b": raw["b"]}), predictor.predict({"a": raw["a"]}), atol=0
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"c": np.zeros((2, 4))}, "unknown modality 'c'"),
        ({"a": np.zeros((2, 6))}, "modality 'a': expected shape (N, 2, 3), got (2, 6)"),
        ({"a": np.array([["x"] * 3] * 2)[None]}, "modality 'a': expected numbers"),
        ({"a": np.zeros((2, 2, 3)), "b": np.zeros((3, 4))}, "disagree on the number of examples"),
        ({"b": np.array([[1.0, np.nan, 0.0, 0.0]])}, "modality 'b' row 0: holds NaN or infinite"),
        ({}, "no modality the model reads"),
    ],
)
def test_bad_inputs_are_one_clear_error(features_run: tuple[Path, Path], inputs: dict, message: str) -> None:
    predictor = load_model(features_run[0], method="i2m2[late]", seed=0)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        predictor.predict(inputs)


def test_unknown_method_group_or_seed_names_what_exists(features_run: tuple[Path, Path]) -> None:
    run, _ = features_run
    with pytest.raises(UserError, match=r"'i2m2' has no finished job .* expected one of \['i2m2\[late\]'"):
        load_model(run, method="i2m2")
    with pytest.raises(UserError, match=r"--seed: 7 .* expected one of \[0, 1\]"):
        load_model(run, method="i2m2[late]", seed=7)
    with pytest.raises(UserError, match="not a run folder"):
        load_model(run / "jobs", method="i2m2[late]")
