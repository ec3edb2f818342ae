"""``i2m2 analyze``'s missing-modality analysis for any subset, on hand-built runs whose answers are known."""

from __future__ import annotations

import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch

from i2m2.analysis.missing import HEATMAP_ABOVE, levels, missing_results, product, withheld_subsets
from i2m2.analysis.report import analyze_run
from i2m2.analysis.run_data import load_run
from i2m2.data.multimodal_dataset import MultimodalDataset
from i2m2.models.i2m2 import I2M2
from i2m2.models.registry import create_fusion
from i2m2.models.subsets import MAX_PER_SIZE
from i2m2.runs.plots import accuracy_references
from i2m2.runs.predictions import Predictions, predictions_path, save_predictions
from i2m2.training.lightning_module import MethodModule
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


def test_null_token_expert_of_an_older_run_is_not_derived_for_several_modalities(tmp_path: Path):
    """A run that saved single modalities only (before the per-subset predictions) cannot give a+b."""
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


def test_every_subset_of_a_size_up_to_twenty_then_a_seeded_sample():
    assert len(withheld_subsets("abcd")) == 14  # every non-empty proper subset
    six = withheld_subsets("abcdef")
    assert len(six) == 62  # 6 + 15 + 20 + 15 + 6: every subset of every size
    assert [s for s in six if len(s) == 2] == list(combinations("abcdef", 2))  # all 15 pairs
    seven = withheld_subsets("abcdefg")
    sizes = [sum(len(s) == k for s in seven) for k in range(1, 7)]
    assert sizes == [7, MAX_PER_SIZE, MAX_PER_SIZE, MAX_PER_SIZE, MAX_PER_SIZE, 7]
    assert math.comb(7, 2) > MAX_PER_SIZE and seven == withheld_subsets("abcdefg")  # sampled, seeded
    assert len(set(seven)) == len(seven)


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


SIX = tuple(f"v{i}" for i in range(6))


@pytest.mark.parametrize("fusion", ["null-token", "null-token-product"])
def test_null_token_rows_for_every_pair_of_six_views(tmp_path: Path, fusion: str):
    """The run asks the null-token expert again without every subset; the analysis reads every pair."""
    torch.manual_seed(0)
    n = 40
    inputs = {m: torch.randn(n, 3) for m in SIX}
    labels = torch.randint(C, (n,))
    inter = create_fusion(fusion, dict.fromkeys(SIX, 3), C, hidden=8)
    model = I2M2(experts={m: torch.nn.Linear(3, C) for m in SIX}, inter=inter, num_classes=C).eval()
    module = MethodModule(model)
    with torch.no_grad():
        logits, masks = model.expert_logits(inputs)
        log_probs = model(inputs)
        out = module._predictions(logits, masks, labels, log_probs, inputs)
        # each saved subset is the model asked with those views marked absent
        absent = {m: torch.full((n,), m not in ("v1", "v4")) for m in SIX}
        torch.testing.assert_close(out["withheld"]["v1+v4"], model(inputs, present=absent))
    assert set(out["withheld"]) == {"+".join(s) for s in withheld_subsets(SIX)}

    root = tmp_path / "run"
    arrays = {k: v.numpy() for k, v in out["experts"].items()}
    withheld = {k: v.numpy() for k, v in out["withheld"].items()}
    save_predictions(
        predictions_path(root, "", "i2m2", 0),
        Predictions(labels.numpy(), log_probs.numpy(), arrays, withheld),
    )
    experts = {
        name: {"modalities": list(e.modalities), "handles_missing": name == "inter"}
        for name, e in model.named_experts().items()
    }
    acc = float((log_probs.argmax(1) == labels).float().mean())
    row = {"method": "i2m2", "group": "", "metrics": {"acc": {"mean": acc, "std": 0.0, "per_seed": [acc]}}}
    config = {"modalities": list(SIX), "seeds": [0], "experts": {"i2m2": experts}}
    (root / "results.json").write_text(json.dumps({"experiment": "six", "rows": [row], "config": config}))

    pairs = {r.name: r for r in missing_results(load_run(root)) if len(r.withheld) == 2}
    assert len(pairs) == 15 > HEATMAP_ABOVE
    assert {tuple(name.split("+")) for name in pairs} == set(combinations(SIX, 2))
    for name, result in pairs.items():
        expected = float((withheld[name].argmax(1) == labels.numpy()).mean())
        assert result.stat is not None and result.note == "saved by the run", name
        assert result.stat.per_seed == pytest.approx([expected], abs=1e-6)
    written = {p.name for p in analyze_run(root)}
    assert "missing_withheld2_heatmap.png" in written and "missing_withheld2.png" not in written
    assert "missing_withheld1.png" in written  # six single views: bars
    heatmap = root / "analysis" / "missing_withheld2_heatmap.png"
    assert heatmap.read_bytes().startswith(b"\x89PNG")
    assert "v1+v4" in (root / "analysis" / "missing.md").read_text()
