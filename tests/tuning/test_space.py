"""The search space: the recipe's key style, ranges and lists, the paper's default, bad input named."""

from __future__ import annotations

import pytest

from i2m2.errors import UserError
from i2m2.tuning.space import DEFAULT_SPACE, parse_dimension, parse_space

MODALITIES = ("audio", "image")


def test_the_default_space_is_the_papers_lr_and_weight_decay_on_a_log_scale_for_every_method():
    space = parse_space(None, MODALITIES)
    for method in ("unimodal:audio", "inter", "intra", "i2m2"):
        dims = space.for_method(method)
        assert set(dims) == set(DEFAULT_SPACE) == {"lr", "weight_decay"}
        assert dims["lr"].log and dims["weight_decay"].log
        assert dims["lr"].grid() == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
        assert dims["weight_decay"].grid() == (1e-4, 1e-3, 1e-2, 1e-1)


def test_per_stage_and_per_expert_keys_override_setting_by_setting():
    space = parse_space(
        {
            "pretrain.lr": "1e-5:1e-1:log",
            "experts": {"audio": {"weight_decay": "0,1e-4,1e-2"}},
            "finetune_methods.i2m2.lr": [1e-4, 1e-3],
        },
        MODALITIES,
    )
    audio, image = space.for_method("unimodal:audio"), space.for_method("unimodal:image")
    assert audio["lr"].grid() == image["lr"].grid() == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    assert audio["weight_decay"].grid() == (0.0, 1e-4, 1e-2)
    assert image["weight_decay"].grid() == (1e-4, 1e-3, 1e-2, 1e-1)  # the default
    assert space.for_method("i2m2")["lr"].grid() == (1e-4, 1e-3)
    assert space.for_method("intra")["lr"].grid() == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    assert space.for_method("inter")["lr"].grid() == audio["lr"].grid()


def test_ranges_take_decades_or_given_points_and_text_round_trips():
    assert parse_dimension("momentum", "0:0.8", "x").grid() == (0.0, 0.2, 0.4, 0.6, 0.8)
    assert parse_dimension("lr", "1e-4:1e-2:log:3", "x").grid() == (1e-4, 1e-3, 1e-2)
    assert parse_dimension("batch_size", "16,64", "x").grid() == (16.0, 64.0)
    for text in ("1e-05:0.1:log", "0:0.9", "0.001:0.1:log:5", "0,0.0001,0.01"):
        dim = parse_dimension("weight_decay", text, "x")
        assert parse_dimension("weight_decay", dim.text(), "x") == dim


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"pretrain.foo": "1"}, "--space.pretrain.foo: unknown setting 'foo'"),
        ({"middle.lr": "1"}, "--space.middle.lr: unknown key"),
        ({"experts.video.lr": "1e-3"}, "--space.experts.video.lr: unknown name 'video'"),
        ({"finetune_methods.inter.lr": "1e-3"}, "unknown name 'inter'"),
        ({"pretrain.lr": "1e-1:1e-5:log"}, "empty range; expected LOW < HIGH"),
        ({"pretrain.lr": "1e-3:1e-3"}, "empty range"),
        ({"pretrain.lr": ""}, "empty list"),
        ({"pretrain.lr": "-1e-3,1e-2"}, "lr: expected a number > 0, got -0.001"),
        ({"pretrain.lr": "-1e-3:1e-2"}, "lr: expected a number > 0"),
        ({"pretrain.weight_decay": "0:1e-2:log"}, "a log range needs LOW > 0"),
        ({"pretrain.lr": "1e-3:1e-1:cubic"}, "scale 'cubic'; expected log or lin"),
        ({"pretrain.lr": "a,b"}, "expected numbers"),
        ({"pretrain.batch_size": "16.5,32"}, "expected an integer"),
    ],
)
def test_bad_spaces_are_one_line_naming_the_key(given, message):
    with pytest.raises(UserError, match=None) as caught:
        parse_space(given, MODALITIES)
    text = str(caught.value)
    assert message in text and "\n" not in text
