"""Charts read as a reviewer reads the paper's: chance lines, one colour per method, honest error bars."""

from __future__ import annotations

from i2m2.runs.plots import AUROC_CHANCE, CHANCE, MAJORITY, method_color, metric_references


def test_every_metric_has_its_chance_line():
    levels = {"a": {"chance": 0.25, "majority": 0.4}, "b": {"chance": 0.5, "majority": 0.6}}
    assert metric_references("acc", levels, ["a", "b"]) == {CHANCE: [25.0, 50.0], MAJORITY: [40.0, 60.0]}
    assert metric_references("balanced_acc", levels, ["a", "b"]) == {CHANCE: [25.0, 50.0]}
    assert metric_references("auroc", levels, ["a", "b"]) == {AUROC_CHANCE: [50.0, 50.0]}
    assert metric_references("loss", levels, ["a", "b"]) == {}


def test_a_method_keeps_its_colour_in_every_chart():
    assert method_color("i2m2") == "tab:green" and method_color("intra") == "tab:blue"
    assert method_color("inter") == "tab:orange"
    assert method_color("unimodal:audio") == method_color("unimodal:audio")  # fixed by the name
    assert method_color("i2m2[lrtf]") not in ("tab:green", "tab:blue", "tab:orange")


def test_titles_say_simulated_data_and_all_subsets(tmp_path):
    from i2m2.experiments.synthetic import synthetic
    from i2m2.orchestration.comparison import Comparison, RunOptions
    from i2m2.runs.folder import RunFolder

    experiment = synthetic(num_modalities=3)
    options = RunOptions(seeds=1, all_subsets=True)
    title = Comparison(experiment, RunFolder(tmp_path / "run"), options).title()
    assert "simulated data" in title and "one inter expert per subset" in title and "1 seed," in title
