"""The Experiment builds its methods and their settings: the one place a method is assembled."""

from __future__ import annotations

from dataclasses import replace

import pytest
from torch import nn

from i2m2.errors import UserError
from i2m2.experiment import Recipe, StageChanges, StageConfig
from i2m2.experiments.synthetic import synthetic
from i2m2.models.expert import Expert


def test_every_method_is_built_from_the_experiments_builders():
    experiment = synthetic()
    expected = {
        "unimodal:m0": {"m0"},
        "intra": {"m0", "m1"},
        "inter": {"inter"},
        "i2m2": {"m0", "m1", "inter"},
    }
    for method, experts in expected.items():
        model = experiment.build_model(method, "both")
        assert set(model.experts) == experts
        assert model.num_classes == experiment.classes("both")


def test_the_model_never_changes_itself_in_forward(small_method):
    import torch

    model = small_method("i2m2", "late", ("m0", "m1"), num_classes=None)
    model({"m0": torch.randn(4, 5), "m1": torch.randn(4, 3)})  # experts agree on C; the attribute stays unset
    assert model.num_classes is None


def test_unknown_group_fusion_and_method_are_one_line():
    experiment = synthetic()
    with pytest.raises(UserError, match="unknown group 'nope'"):
        experiment.build_model("i2m2", "nope")
    with pytest.raises(UserError, match="unknown fusion 'lrtf'"):
        experiment.build_model("i2m2", "both", fusion="lrtf")
    with pytest.raises(UserError, match="unknown method 'mixed'"):
        experiment.build_model("mixed", "both")


def test_a_builder_returning_no_module_is_named():
    experiment = synthetic()
    experiment.build_unimodal = lambda modality, classes, group: "an MLP"
    with pytest.raises(UserError, match=r"build_unimodal returned str for 'm0'; expected a torch.nn.Module"):
        experiment.build_model("unimodal:m0", "both")
    experiment = synthetic()
    experiment.build_inter = {"late": lambda mods, classes, group: nn.Linear(2, 2)}
    with pytest.raises(UserError, match=r"build_inter\['late'\] returned Linear for 'm0\+m1'"):
        experiment.build_model("inter", "both")
    assert issubclass(Expert, nn.Module)


def test_stage_settings_per_method():
    experiment = synthetic()
    experiment.recipe = experiment.recipe.changed(
        pretrain=StageChanges(lr=0.5),
        experts={"inter": StageChanges(batch_size=7)},
        finetune_methods={"intra": StageChanges(lr=0.02)},
    )
    assert experiment.stage_config("unimodal:m0").lr == 0.5
    assert experiment.stage_config("inter").batch_size == 7
    assert experiment.stage_config("intra").lr == 0.02
    assert experiment.stage_config("i2m2").lr == experiment.recipe.finetune.lr
    scratch = experiment.stage_config("i2m2", from_scratch=True)
    assert scratch.max_epochs == experiment.recipe.pretrain.max_epochs
    assert experiment.stage_config("i2m2", max_epochs=2).max_epochs == 2


def test_recipe_changes_merge_field_by_field():
    experiment = synthetic()
    base = replace(experiment.recipe, experts={"m0": StageChanges(lr=0.1, batch_size=9)})
    changed = base.changed(experts={"m0": StageChanges(lr=0.2)})
    assert changed.experts["m0"] == StageChanges(lr=0.2, batch_size=9)
    assert changed.pretrain == base.pretrain


def test_load_splits_checks_the_data_once():
    experiment = synthetic()
    experiment.num_classes = 5
    with pytest.raises(UserError, match="the data has 4 classes, the experiment expects 5"):
        experiment.load_splits("both", None, 0)
    experiment = synthetic()
    experiment.load_data = lambda group, data_dir, seed: None
    with pytest.raises(UserError, match="load_data returned NoneType"):
        experiment.load_splits("both", None, 0)


def test_stage_values_are_checked():
    with pytest.raises(ValueError, match="bn_stats"):
        StageConfig(bn_stats="eval")
    changes = StageChanges(lr=0.1, bn_stats="batch")
    assert changes.applied_to(StageConfig()).bn_stats == "batch"
    from i2m2.experiments.synthetic import synthetic

    experiment = synthetic()
    with pytest.raises(ValueError, match="finetune_methods"):
        type(experiment)(**{**vars(experiment), "recipe": Recipe(finetune_methods={"inter": changes})})


def test_per_method_finetune_changes_apply_last_also_from_scratch(tmp_path):
    from dataclasses import replace

    from i2m2.experiments.synthetic import synthetic

    experiment = synthetic()
    experiment.recipe = replace(
        experiment.recipe,
        pretrain=replace(experiment.recipe.pretrain, max_epochs=7, patience=None),
        finetune_methods={"intra": StageChanges(lr=0.3, patience=11)},
    )
    for scratch in (False, True):
        intra = experiment.stage_config("intra", from_scratch=scratch)
        i2m2 = experiment.stage_config("i2m2", from_scratch=scratch)
        assert (intra.lr, intra.patience) == (0.3, 11)
        assert i2m2.lr == experiment.recipe.finetune.lr
        assert intra.max_epochs == (7 if scratch else experiment.recipe.finetune.max_epochs)
