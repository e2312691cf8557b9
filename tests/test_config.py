"""TrainConfig: "none" weights become None, every choice setting is checked, saved configs still load."""

import json
from dataclasses import fields

import pytest

from facial_expression.config import PROJ_ROOT, SAMPLE_RESULTS_DIR, TrainConfig
from facial_expression.errors import ConfigError, FERError

SAVED_CONFIGS = sorted((PROJ_ROOT / "examples").rglob("config.json"))


@pytest.mark.parametrize("weights", ["none", "None", "NONE", "", " none "])
def test_none_weights_become_none(weights):
    assert TrainConfig(model="vgg16", weights=weights).weights is None


@pytest.mark.parametrize("weights", ["imagenet", "/path/to/vgg16.pth", None])
def test_other_weights_are_kept(weights):
    assert TrainConfig(model="vgg16", weights=weights).weights == weights


@pytest.mark.parametrize("field,value", [("model", "resnet"), ("optimizer", "rmsprop"), ("schedule", "step"),
                                         ("head", "attention"), ("freeze", "some"), ("augment", "heavy"),
                                         ("augment_backend", "kornia"), ("mix", "blend"), ("amp", "fp8")])
def test_a_value_outside_its_choices_is_refused_in_one_line(field, value):
    with pytest.raises(ConfigError, match=rf"^unknown {field} '{value}'; choose one of ") as e:
        TrainConfig(**{field: value})
    assert isinstance(e.value, FERError) and "\n" not in str(e.value)
    for choice in TrainConfig.CHOICES[field]:
        assert choice in str(e.value)


def test_every_choice_is_accepted():
    for field, choices in TrainConfig.CHOICES.items():
        for choice in choices:
            assert getattr(TrainConfig(**{field: choice}), field) == choice


def test_each_choice_builds_what_it_names():
    """The choices are not only stored: each builds its own optimiser, schedule, head, frozen layers and policy."""
    from torch import nn, optim

    from facial_expression.config import AugmentConfig
    from facial_expression.models import build_model, count_parameters, model_options
    from facial_expression.training import make_optimizer, make_scheduler

    def built(**kw):
        cfg = TrainConfig(**{"model": "light-vgg", "input_size": 32, **kw})
        return cfg, build_model(cfg.model, 3, **model_options(cfg))

    cfg, model = built()
    for name, kind in {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}.items():
        assert type(make_optimizer(model, TrainConfig(optimizer=name))) is kind
    schedules = {s: make_scheduler(make_optimizer(model, cfg), TrainConfig(schedule=s), 10) for s in ("onecycle",
                                                                                                  "cosine", "none")}
    assert isinstance(schedules["onecycle"], optim.lr_scheduler.OneCycleLR)
    assert isinstance(schedules["cosine"], optim.lr_scheduler.LambdaLR) and schedules["none"] is None
    _, gap = built(head="gap")
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in gap.modules())
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
    trainable = {f: count_parameters(built(model="vgg16", weights="none", freeze=f)[1])["trainable"]
                 for f in ("none", "all-but-last-block", "features")}
    assert trainable["none"] > trainable["all-but-last-block"] > trainable["features"] > 0
    assert AugmentConfig.preset("none") != AugmentConfig.preset("standard") != AugmentConfig.preset("photometric")


def test_to_dict_from_dict_round_trip_through_json():
    cfg = TrainConfig(model="vgg16", weights="none", betas=(0.8, 0.99), optimizer="sgd", mix="both")
    back = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.betas == (0.8, 0.99) and back.weights is None


def test_from_dict_ignores_keys_it_no_longer_knows():
    assert TrainConfig.from_dict({"model": "vgg16", "dataset": {"x": 1}, "retired": 3}) == TrainConfig(model="vgg16")


def test_the_development_sample_has_saved_configs():
    assert SAVED_CONFIGS and all(p.is_relative_to(PROJ_ROOT / "examples") for p in SAVED_CONFIGS)
    assert any(p.is_relative_to(SAMPLE_RESULTS_DIR) for p in SAVED_CONFIGS)


@pytest.mark.parametrize("path", SAVED_CONFIGS, ids=lambda p: str(p.relative_to(PROJ_ROOT / "examples")))
def test_every_committed_config_loads(path):
    saved = json.loads(path.read_text())
    cfg = TrainConfig.from_dict(saved)
    known = {f.name for f in fields(TrainConfig)}
    for key, value in saved.items():
        if key in known and key != "betas":
            assert getattr(cfg, key) == value, key


def test_differences_name_each_changed_setting_and_give_newer_ones_their_default():
    cfg = TrainConfig(lr=0.01, batch_norm=True)
    saved = json.loads(json.dumps(TrainConfig().to_dict()))  # as config.json stores it: tuples become lists
    del saved["ema"]  # a config written before `ema` existed
    assert cfg.differences(saved) == {"lr": (0.001, 0.01), "batch_norm": (False, True)}
    assert cfg.differences(saved, ignore={"lr"}) == {"batch_norm": (False, True)}
    assert TrainConfig(ema=0.999).differences(saved) == {"ema": (0.0, 0.999)}
