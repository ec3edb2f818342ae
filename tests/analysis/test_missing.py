"""``i2m2 analyze``'s missing-modality analysis for any subset, on hand-built runs whose answers are known."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.analysis.missing import levels, missing_results, product, withheld_subsets
from i2m2.analysis.report import analyze_run
from i2m2.analysis.run_data import load_run
from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.runs.plots import accuracy_references
from i2m2.runs.predictions import Predictions, predictions_path, save_predictions
from tests.helpers import analysis as handmade

C = 3
LABELS = np.array([0, 1, 2, 0])
PRIOR = np.array([0.5, 0.25, 0.25])


def sure(predicted: list[int], top: float) -> np.ndarray:
    """Log-probabilities with ``top`` on each predicted class and the rest shared by the others."""
    probs = np.full((len(predicted), C), (1 - top) / (C - 1))
    probs[np.arange(len(predicted)), predicted] = top
    return np.log(probs)


# Fine-tuned experts of the I2M2 row (three modalities, one inter expert per pair a+b and one over all).
EXPERTS = {
    "a": sure([0, 0, 0, 0], 0.5),
    "b": sure([1, 1, 1, 1], 0.5),
    "c": sure([2, 2, 2, 2], 0.6),
    "inter:a+b": sure([0, 1, 2, 0], 0.6),
    "inter": sure([1, 1, 1, 1], 0.4),
}
READS = {"a": ["a"], "b": ["b"], "c": ["c"], "inter:a+b": ["a", "b"], "inter": ["a", "b", "c"]}


def write_run(root: Path, prior_correction: bool = False, null_token: bool = False) -> Path:
    """A run folder as ``i2m2 run`` writes it: unimodal rows for a and c, and I2M2 (no saved
    single-modality predictions, except with a null-token inter expert)."""
    root.mkdir(parents=True)
    experts = {n: {"modalities": m, "handles_missing": null_token and n == "inter"} for n, m in READS.items()}
    rows = []
    for method in ("unimodal:a", "unimodal:c", "i2m2"):
        if method == "i2m2":
            withheld = {m: sure([0, 1, 2, 1], 0.5) for m in "abc"} if null_token else {}
            p = Predictions(LABELS, sure([0, 1, 2, 0], 0.5), EXPERTS, withheld)
        else:
            e = EXPERTS[method[-1]]
            p = Predictions(LABELS, e, {method[-1]: e})
        save_predictions(predictions_path(root, "", method, 0), p)
        acc = float((p.log_probs.argmax(1) == LABELS).mean())
        rows.append(
            {"method": method, "group": "", "metrics": {"acc": {"mean": acc, "std": 0.0, "per_seed": [acc]}}}
        )
    config = {
        "modalities": ["a", "b", "c"],
        "seeds": [0],
        "prior_correction": prior_correction,
        "experts": {"i2m2": experts},
        "log_priors": {"": {"0": np.log(PRIOR).tolist()}} if prior_correction else {},
    }
    (root / "results.json").write_text(json.dumps({"experiment": "hand", "rows": rows, "config": config}))
    return root


def by_withheld(root: Path) -> dict[str, object]:
    return {r.name: r for r in missing_results(load_run(root)) if r.method == "i2m2"}


def test_product_by_hand():
    """Example 2 without c: a, b and inter:a+b give 0.5*0.25*0.2, 0.25*0.5*0.2, 0.25*0.25*0.6."""
    kept = [EXPERTS[n][2:3] for n in ("a", "b", "inter:a+b")]
    expected = np.array([0.025, 0.025, 0.0375]) / 0.0875
    assert np.exp(product(kept)[0]) == pytest.approx(expected)
    # with the prior correction: divided by p(y)^2 (three experts carry the prior three times)
    corrected = np.array([0.025 / 0.25, 0.025 / 0.0625, 0.0375 / 0.0625])
    assert np.exp(product(kept, np.log(PRIOR))[0]) == pytest.approx(corrected / corrected.sum())


def test_every_subset_withheld(tmp_path: Path):
    results = by_withheld(write_run(tmp_path / "run"))
    assert list(results) == ["all modalities", "a", "b", "c", "a+b", "a+c", "b+c"]
    acc = {name: r.stat.per_seed[0] for name, r in results.items() if r.stat}
    # without c: a * b * inter:a+b is right everywhere; without a: b * c says 2 (right once); ...
    expected = {"all modalities": 1.0, "a": 0.25, "b": 0.25, "c": 1.0, "a+b": 0.25, "a+c": 0.25, "b+c": 0.5}
    assert acc == pytest.approx(expected)
    assert results["c"].note == "product of a, b, inter:a+b"
    # the matching smaller model when the run has it, and which one is missing when it does not
    assert results["a+b"].reference.method == "unimodal:c" and results["a+b"].reference.per_seed == [0.25]
    assert results["b+c"].reference.method == "unimodal:a" and results["b+c"].reference.per_seed == [0.5]
    assert (
        results["a+c"].reference is None and "unimodal:b is not in this run" in results["a+c"].reference_note
    )
    assert results["c"].reference is None and "a+b alone" in results["c"].reference_note


def test_prior_correction_uses_the_saved_prior(tmp_path: Path):
    results = by_withheld(write_run(tmp_path / "run", prior_correction=True))
    # without c, dividing by p(y)^2 turns examples 0 and 3 to class 1 (0.3 vs 0.4): 2 of 4 right
    assert results["c"].stat.per_seed == [0.5]
    assert results["a+b"].stat.per_seed == [0.25]  # one expert left: nothing to correct
    root = write_run(tmp_path / "no-prior", prior_correction=True)
    results_json = json.loads((root / "results.json").read_text())
    results_json["config"]["log_priors"] = {}
    (root / "results.json").write_text(json.dumps(results_json))
    unsaved = by_withheld(root)
    assert unsaved["c"].stat is None and "did not save its training prior" in unsaved["c"].note


def test_null_token_expert_is_not_derived_for_several_modalities(tmp_path: Path):
    results = by_withheld(write_run(tmp_path / "run", null_token=True))
    assert results["a"].stat.per_seed == [0.75] and results["a"].note == "saved by the run"
    assert results["a+b"].stat is None and "null token" in results["a+b"].note


def test_levels_and_charts(tmp_path: Path):
    root = write_run(tmp_path / "run")
    chance, majority = levels(load_run(root), "")
    assert chance == pytest.approx(1 / 3) and majority == pytest.approx(0.5)  # labels 0 1 2 0
    written = {p.name for p in analyze_run(root)}
    assert {"missing.md", "missing_withheld1.png", "missing_withheld2.png"} <= written
    md = (root / "analysis" / "missing.md").read_text()
    assert "chance (1/C) 33.3%, majority class of the test labels 50.0%" in md
    assert "unimodal:b is not in this run" in md


def test_reference_lines():
    levels_by_group = {"x": {"chance": 0.25, "majority": 0.3}, "y": {"chance": 0.5, "majority": 0.6}}
    refs = accuracy_references(levels_by_group, ["x", "y"])
    assert list(refs.values()) == [[25.0, 50.0], [30.0, 60.0]]
    assert accuracy_references(levels_by_group, ["x", "z"]) == {}  # one unknown: no lines at all


def test_subset_sample_for_many_modalities():
    assert len(withheld_subsets("abcd")) == 14  # every non-empty proper subset
    six = withheld_subsets("abcdef")
    assert len(six) == 32 and six == withheld_subsets("abcdef")  # seeded
    assert {s for s in six if len(s) in (1, 5)} == {s for s in withheld_subsets("abcdef") if len(s) in (1, 5)}
    assert sum(len(s) in (1, 5) for s in six) == 12 and math.comb(6, 3) >= sum(len(s) == 3 for s in six)


def test_floating_inputs_cast_to_float32():
    data = MultimodalDataset(
        {
            "x": torch.zeros(3, 2, dtype=torch.float64),
            "h": torch.zeros(3, 2, dtype=torch.float16),
            "tokens": torch.zeros(3, 5, dtype=torch.long),
        },
        torch.tensor([0, 1, 0]),
    )
    assert data.inputs["x"].dtype == torch.float32 and data.inputs["h"].dtype == torch.float32
    assert data.inputs["tokens"].dtype == torch.long  # token ids stay integers
    assert data[0][0]["x"].dtype == torch.float32


def test_missing_modality(tmp_path: Path):
    """On the two-modality run of the other analyses (tests.helpers.analysis)."""
    run = load_run(handmade.write_run(tmp_path / "run"))
    pairs = {(r.method, r.name): r for r in missing_results(run)}
    result = pairs[("i2m2", "a")]
    assert result.stat is not None and result.stat.per_seed == [0.5, 0.5]  # the saved withheld__a
    ref = result.reference
    assert ref is not None and ref.method == "unimodal:b" and ref.per_seed == pytest.approx([1 / 6, 1 / 6])
    result = pairs[("i2m2", "b")]
    assert result.stat is not None and result.stat.per_seed == [1.0, 1.0]
    assert result.reference is not None and result.reference.method == "unimodal:a"
    assert result.reference.per_seed == pytest.approx([2 / 6, 2 / 6])
    assert ("intra", "a") in pairs
    # inter reads both modalities: withholding one leaves no expert, said instead of a number
    assert pairs[("inter", "a")].stat is None and "no expert left" in pairs[("inter", "a")].note
