"""Verdicts: paired bootstrap intervals of metric differences between rows, and their place in the results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from i2m2.metrics import DefinedMacroAUROC, PresentClassesBalancedAccuracy
from i2m2.objectives.multitask import MeanAUROC
from i2m2.runs.predictions import Predictions, load_predictions, predictions_path, save_predictions
from i2m2.runs.results import write_results
from i2m2.runs.verdict import (
    BETTER,
    WITHIN_NOISE,
    WORSE,
    Difference,
    comparisons,
    paired_difference,
    run_verdicts,
    statistic,
    weighted_auroc,
)


def one_hot_log_probs(predicted: np.ndarray, classes: int, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(predicted), classes), (1 - confidence) / (classes - 1))
    probs[np.arange(len(predicted)), predicted] = confidence
    return np.log(probs).astype(np.float32)


def predictions_with(labels: np.ndarray, predicted: np.ndarray, classes: int = 4) -> Predictions:
    return Predictions(labels=labels, log_probs=one_hot_log_probs(predicted, classes))


def shared_errors(n: int = 1000, discordant: int = 30, seed: int = 0) -> tuple[Predictions, Predictions]:
    """Two rows right on the same half of the examples, except ``discordant`` more that only ``a`` gets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    right = rng.random(n) < 0.5
    wrong = (labels + 1) % 4
    b = np.where(right, labels, wrong)
    a = b.copy()
    extra = rng.choice(np.flatnonzero(~right), discordant, replace=False)
    a[extra] = labels[extra]
    return predictions_with(labels, a), predictions_with(labels, b)


def test_identical_predictions_are_within_noise():
    a, _ = shared_errors()
    result = paired_difference([a], [a], "acc")
    assert isinstance(result, Difference)
    assert result.difference == 0 and result.low <= 0 <= result.high
    assert result.verdict == WITHIN_NOISE


def test_a_clearly_better_row_has_an_interval_above_zero_and_the_other_below():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    good = np.where(rng.random(600) < 0.9, labels, (labels + 1) % 3)
    poor = np.where(rng.random(600) < 0.5, labels, (labels + 1) % 3)
    a, b = predictions_with(labels, good, 3), predictions_with(labels, poor, 3)
    for metric in ("acc", "balanced_acc", "auroc"):
        better = paired_difference([a], [b], metric)
        worse = paired_difference([b], [a], metric)
        assert isinstance(better, Difference) and isinstance(worse, Difference)
        assert better.low > 0 and better.verdict == BETTER, metric
        assert worse.high < 0 and worse.verdict == WORSE, metric
        assert better.low <= better.difference <= better.high
        assert worse.difference == pytest.approx(-better.difference)


def test_the_interval_is_paired_so_shared_errors_cancel():
    # a is right on 30 of 1000 examples where b is wrong, and both share every other outcome: a paired
    # interval sees only those 30 examples; resampling the two rows independently would see all the noise.
    a, b = shared_errors()
    paired = paired_difference([a], [b], "acc")
    assert isinstance(paired, Difference)
    assert paired.difference == pytest.approx(0.03)
    assert paired.verdict == BETTER and paired.high - paired.low < 0.03
    rng = np.random.default_rng(0)
    n = len(a.labels)
    sa, sb = statistic("acc", a), statistic("acc", b)
    assert sa is not None and sb is not None
    unpaired = sa(rng.multinomial(n, np.full(n, 1 / n), 2000)) - sb(
        rng.multinomial(n, np.full(n, 1 / n), 2000)
    )
    low, high = np.percentile(unpaired, [2.5, 97.5])
    assert low < 0 < high  # independent resamples would call the same lead noise
    assert high - low > 2 * (paired.high - paired.low)


def test_seeds_are_combined_and_one_seed_still_gets_an_interval():
    pairs = [shared_errors(seed=s, discordant=10 + 10 * s) for s in range(3)]
    one = paired_difference([pairs[0][0]], [pairs[0][1]], "acc")
    three = paired_difference([p[0] for p in pairs], [p[1] for p in pairs], "acc")
    assert isinstance(one, Difference) and isinstance(three, Difference)
    assert one.low < one.difference < one.high and one.examples == [1000]
    assert three.difference == pytest.approx(np.mean([0.01, 0.02, 0.03]))
    assert three.examples == [1000, 1000, 1000]
    # Averaging three seeds' resampled differences narrows the interval (about 1/sqrt(3) of one seed's).
    assert three.high - three.low < one.high - one.low


def test_the_bootstrap_is_deterministic():
    a, b = shared_errors()
    assert paired_difference([a], [b], "auroc") == paired_difference([a], [b], "auroc")


def test_point_estimates_match_the_reported_metrics_ties_and_absent_classes_included():
    rng = np.random.default_rng(2)
    labels = rng.choice([0, 1, 3], 300)  # class 2 absent: undefined for AUROC and balanced accuracy
    log_probs = np.log(rng.dirichlet(np.ones(4), 300)).round(1).astype(np.float32)  # rounding: ties
    predictions = Predictions(labels=labels, log_probs=log_probs)
    ones = np.ones((1, 300))
    probs, target = torch.from_numpy(np.exp(log_probs)), torch.from_numpy(labels)
    auroc, balanced = DefinedMacroAUROC(4), PresentClassesBalancedAccuracy(4)
    auroc.update(probs, target)
    balanced.update(probs, target)
    got = {m: statistic(m, predictions) for m in ("acc", "balanced_acc", "auroc")}
    assert got["auroc"] is not None and got["balanced_acc"] is not None and got["acc"] is not None
    assert got["auroc"](ones)[0] == pytest.approx(float(auroc.compute()), abs=1e-6)
    assert got["balanced_acc"](ones)[0] == pytest.approx(float(balanced.compute()), abs=1e-6)
    assert got["acc"](ones)[0] == pytest.approx(np.mean(log_probs.argmax(1) == labels))


def test_multitask_auroc_is_the_mean_over_tasks():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, (200, 3))
    labels[:, 2] = 0  # one task without positives: left out of the mean
    log_probs = np.log(rng.dirichlet(np.ones(2), (200, 3))).astype(np.float32)
    mean_auroc = MeanAUROC(3)
    mean_auroc.update(torch.from_numpy(np.exp(log_probs)), torch.from_numpy(labels))
    stat = statistic("auroc", Predictions(labels=labels, log_probs=log_probs))
    assert stat is not None
    assert stat(np.ones((1, 200)))[0] == pytest.approx(float(mean_auroc.compute()), abs=1e-6)


def test_weighted_auroc_equals_the_auroc_of_the_repeated_examples():
    rng = np.random.default_rng(4)
    scores, positive = rng.integers(0, 5, 50).astype(float), rng.random(50) < 0.4
    counts = rng.integers(0, 3, 50)
    repeated = DefinedMacroAUROC(2)
    one_class = np.repeat(positive, counts).astype(int)
    s = np.repeat(scores, counts)
    repeated.update(torch.from_numpy(np.stack([-s, s], 1)), torch.from_numpy(one_class))
    got = weighted_auroc(scores, positive, counts[None, :].astype(float))[0]
    assert got == pytest.approx(float(repeated.compute()), abs=1e-6)
    assert np.isnan(weighted_auroc(scores, np.zeros(50, bool), np.ones((1, 50))))[0]


def test_per_example_scores_make_any_mean_metric_comparable(tmp_path):
    # VQA: each question's score depends on the human answers, which the predictions hold only as scores
    a, b = shared_errors()
    assert "not computed from per-example" in str(paired_difference([a], [b], "vqa_score"))
    a.scores = np.where(a.log_probs.argmax(1) == a.labels, 1.0, 0.3).astype(np.float32)
    b.scores = np.where(b.log_probs.argmax(1) == b.labels, 1.0, 0.3).astype(np.float32)
    save_predictions(tmp_path / "a.npz", a)  # the scores survive the predictions file
    a = load_predictions(tmp_path / "a.npz")
    result = paired_difference([a], [b], "vqa_score")
    assert isinstance(result, Difference) and result.difference == pytest.approx(0.7 * 0.03)
    assert result.verdict == BETTER


def test_what_cannot_be_compared_says_why():
    a, b = shared_errors()
    shuffled = Predictions(labels=b.labels[::-1].copy(), log_probs=b.log_probs)
    assert "differ" in str(paired_difference([a], [shuffled], "acc"))
    assert "not computed from per-example" in str(paired_difference([a], [b], "auprc"))
    assert "both rows" in str(paired_difference([a], [], "acc"))
    one_class = Predictions(labels=np.zeros(5, np.int64), log_probs=a.log_probs[:5])
    assert "undefined" in str(paired_difference([one_class], [one_class], "auroc"))


def row(method: str, mean: float | None, group: str = "") -> dict:
    return {"method": method, "group": group, "metrics": {"acc": {"mean": mean, "std": 0.0, "per_seed": []}}}


def test_comparisons_each_product_against_the_best_other_row_and_intra_against_inter():
    rows = [row("unimodal:a", 0.5), row("logistic", 0.7), row("intra", 0.6), row("inter", 0.65)]
    rows += [row("i2m2", 0.72), row("unimodal:b", None)]
    assert comparisons(rows, "acc") == [
        ("", "i2m2", "logistic", "best other row"),
        ("", "intra", "i2m2", "best other row"),
        ("", "intra", "inter", "intra vs inter"),
    ]
    rows[1] = row("logistic", 0.55)  # no longer the best: I2M2 still meets the plain baseline
    assert comparisons(rows, "acc") == [
        ("", "i2m2", "inter", "best other row"),
        ("", "intra", "i2m2", "best other row"),
        ("", "i2m2", "logistic", "the plain baseline"),
        ("", "intra", "inter", "intra vs inter"),
    ]
    fused = [row("intra", 0.6, "g"), row("inter[lf]", 0.7, "g"), row("inter[lrtf]", 0.5, "g")]
    fused += [row("i2m2[lf]", 0.8, "g"), row("i2m2[lrtf]", 0.75, "g")]
    assert comparisons(fused, "acc") == [
        ("g", "i2m2[lf]", "i2m2[lrtf]", "best other row"),  # and not i2m2[lrtf] - i2m2[lf] again
        ("g", "intra", "i2m2[lf]", "best other row"),
        ("g", "intra", "inter[lf]", "intra vs inter"),
        ("g", "intra", "inter[lrtf]", "intra vs inter"),
    ]
    assert comparisons([row("unimodal:a", 0.5), row("inter", 0.6)], "acc") == []


def test_results_md_and_json_carry_the_verdicts(tmp_path):
    a, b = shared_errors()
    for seed in (0, 1):
        save_predictions(predictions_path(tmp_path, "", "i2m2", seed), a)
        save_predictions(predictions_path(tmp_path, "", "inter", seed), b)
    # intra saved for seed 0 only: its verdicts use that seed; unimodal:m has no predictions at all
    save_predictions(predictions_path(tmp_path, "", "intra", 0), b)
    rows = [row("unimodal:m", 0.1), row("intra", 0.5), row("inter", 0.52), row("i2m2", 0.55)]
    results = write_results(tmp_path, "demo", rows, {"monitor": "acc", "seeds": [0, 1]})
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["verdicts"] == json.loads(json.dumps(results["verdicts"]))
    by_pair = {(c["method"], c["against"]): c for c in on_disk["verdicts"]["comparisons"]}
    assert by_pair["i2m2", "inter"]["verdict"] == BETTER and by_pair["i2m2", "inter"]["seeds"] == [0, 1]
    assert by_pair["intra", "i2m2"]["verdict"] == WORSE and by_pair["intra", "i2m2"]["seeds"] == [0]
    assert by_pair["intra", "inter"]["verdict"] == WITHIN_NOISE
    assert by_pair["intra", "inter"]["ci_low"] == by_pair["intra", "inter"]["ci_high"] == 0
    markdown = (tmp_path / "results.md").read_text()
    assert "paired bootstrap over test examples" in markdown
    assert "| i2m2 − inter (best other row) | +3.00 (+30.0 of 1000 examples) |" in markdown
    assert "| **better** |" in markdown and "| **within noise** |" in markdown
    assert markdown.index("## acc") < markdown.index("## verdict")


def test_missing_predictions_give_a_note_not_a_verdict(tmp_path):
    verdicts = run_verdicts(tmp_path, [row("inter", 0.5), row("i2m2", 0.6)], "acc", [0])
    (only,) = verdicts["comparisons"]
    assert only["verdict"] is None and only["note"] == "no saved predictions of both rows"


def test_the_logistic_row_is_a_linear_layer_over_the_concatenated_inputs(tmp_path):
    from i2m2.catalog import get_experiment
    from i2m2.errors import UserError
    from i2m2.orchestration.plan import all_methods, parse_method
    from tests.experiments.test_features import write_features

    write_features(tmp_path, 2)
    experiment = get_experiment("features", data_dir=tmp_path)
    assert all_methods(experiment)[0] == "logistic" and parse_method(experiment, "logistic").stage == 1
    model = experiment.build_model("logistic")
    (linear,) = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert (linear.in_features, linear.out_features) == (12, 3)  # two views of 6 features, 3 classes
    batch = {"view0": torch.randn(5, 6), "view1": torch.randn(5, 6)}
    expected = torch.log_softmax(linear(torch.cat([batch["view0"], batch["view1"]], 1)), 1)
    assert torch.allclose(model(batch), expected, atol=1e-5)
    synthetic = get_experiment("synthetic")  # no input_dims: no such row
    assert "logistic" not in all_methods(synthetic)
    with pytest.raises(UserError, match="logistic"):
        synthetic.build_model("logistic")


@pytest.mark.slow
def test_a_real_run_reports_verdicts_and_the_logistic_row(tmp_path, capsys):
    from i2m2.cli import main
    from tests.experiments.test_features import write_features

    write_features(tmp_path / "data", 2)
    argv = ["run", "features", "--data-dir", str(tmp_path / "data"), "--seeds", "2", "--max-epochs", "2"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["rows"][0]["method"] == "logistic"
    verdicts = results["verdicts"]
    assert verdicts["metric"] == "acc" and "paired bootstrap" in verdicts["method"]
    means = {r["method"]: r["metrics"]["acc"]["mean"] for r in results["rows"]}
    pairs = [(c["method"], c["against"], c["why"]) for c in verdicts["comparisons"]]
    best = {m: max((o for o in means if o != m), key=means.__getitem__) for m in ("i2m2", "intra")}
    expected = [("i2m2", best["i2m2"], "best other row")]
    if best["intra"] != "i2m2" or best["i2m2"] != "intra":
        expected.append(("intra", best["intra"], "best other row"))
    if best["i2m2"] != "logistic":
        expected.append(("i2m2", "logistic", "the plain baseline"))
    if best["intra"] != "inter":
        expected.append(("intra", "inter", "intra vs inter"))
    assert pairs == expected
    for c in verdicts["comparisons"]:
        assert c["seeds"] == [0, 1] and c["test_examples"] == [600, 600]
        assert c["ci_low"] <= c["difference"] <= c["ci_high"]
        assert c["verdict"] in (BETTER, WORSE, WITHIN_NOISE)
        # the predictions give the tables' own accuracies (log-probabilities saved as float16)
        assert c["difference"] == pytest.approx(means[c["method"]] - means[c["against"]], abs=0.004)
    markdown = (tmp_path / "run" / "results.md").read_text()
    assert "## verdict" in markdown and "| logistic |" in markdown
    assert f"| i2m2 − {verdicts['comparisons'][0]['against']} (best other row) |" in markdown
