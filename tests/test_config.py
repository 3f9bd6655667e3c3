"""Config loading: _base_ inheritance, --opt overrides, schema extension and error messages."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import pytest

from core.classification.config import ClassificationConfig, DataConfig
from core.engine.config import ConfigError, config_from_dict, config_to_dict, dump_config, fld, parse_overrides
from core.engine.config import load_config as _load_config


def load_config(path, overrides=None, schema=ClassificationConfig):
    """These tests read classification recipes: the classification schema unless told otherwise."""
    return _load_config(path, overrides, schema)

from helpers import CONFIGS


def _write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_official_recipe_inherits_base():
    cfg = load_config(os.path.join(CONFIGS, "swin", "swin_t_in1k.yaml"))
    assert cfg.name == "swin_t_in1k"
    assert cfg.model.name == "swin_t" and cfg.model.drop_path_rate == 0.2
    assert cfg.optim.lr == 1e-3 and cfg.optim.lr_base_size == 1024 and cfg.optim.weight_decay == 0.05
    assert cfg.optim.clip_grad == 5.0 and cfg.sched.warmup_epochs == 20 and cfg.sched.min_lr == 1e-5
    assert cfg.sched.warmup_lr == 1e-6 and cfg.train.epochs == 300 and cfg.data.batch_size == 128
    assert cfg.aug.mixup == 0.8 and cfg.aug.cutmix == 1.0 and cfg.aug.label_smoothing == 0.1
    assert cfg.aug.auto_augment == "rand-m9-mstd0.5-inc1"
    assert load_config(os.path.join(CONFIGS, "swin", "swin_s_in1k.yaml")).model.drop_path_rate == 0.3
    assert load_config(os.path.join(CONFIGS, "swin", "swin_b_in1k.yaml")).model.drop_path_rate == 0.5


def test_every_shipped_config_loads():
    names = sorted(f for f in os.listdir(os.path.join(CONFIGS, "swin")) if f.endswith(".yaml"))
    assert "tiny_digits.yaml" in names
    for n in names:
        load_config(os.path.join(CONFIGS, "swin", n))


def test_base_chain_and_overrides(tmp_path):
    _write(tmp_path / "a.yaml", "optim:\n  lr: 0.5\n  betas: [0.8, 0.9]\ntrain:\n  epochs: 7\n")
    child = _write(tmp_path / "b.yaml", "_base_: a.yaml\noptim:\n  weight_decay: 0.1\n")
    cfg = load_config(child, ["train.epochs=3", "optim.lr_mult={backbone: 0.1}", "model.kwargs.depths=[2, 2]",
                              "aug.cutmix_minmax=[0.2, 0.8]"])
    assert cfg.optim.lr == 0.5 and cfg.optim.weight_decay == 0.1 and cfg.optim.betas == [0.8, 0.9]
    assert cfg.train.epochs == 3
    assert cfg.optim.lr_mult == {"backbone": 0.1}
    assert cfg.model.kwargs == {"depths": [2, 2]}
    assert cfg.aug.cutmix_minmax == [0.2, 0.8]
    assert isinstance(cfg.optim.lr, float)
    # int accepted for float, yaml parses 1e-3 written with a dot as float
    cfg = load_config(child, ["optim.lr=1", "optim.lr_mult.head=2"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.optim.lr_mult == {"head": 2.0}


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config(os.path.join(CONFIGS, "swin", "tiny_digits.yaml"), ["optim.lr_mult={layers.0: 0.5}"])
    assert config_from_dict(config_to_dict(cfg), ClassificationConfig) == cfg
    p = _write(tmp_path / "dumped.yaml", dump_config(cfg))
    assert load_config(p) == cfg


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path / "bad.yaml", "optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr' in .*bad\.yaml; did you mean 'optim.lr'"):
        load_config(p)


def test_unknown_key_in_base_names_base_file(tmp_path):
    _write(tmp_path / "base.yaml", "train:\n  epoch: 3\n")
    p = _write(tmp_path / "child.yaml", "_base_: base.yaml\ntrain:\n  seed: 1\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch' in .*base\.yaml"):
        load_config(p)


def test_unknown_section(tmp_path):
    p = _write(tmp_path / "bad.yaml", "trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trian' in .*bad\.yaml; did you mean 'train'"):
        load_config(p)


def test_mistyped_value_names_key_file_and_type(tmp_path):
    p = _write(tmp_path / "bad.yaml", "train:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"'train.epochs' in .*bad\.yaml: expected int, got str 'ten'"):
        load_config(p)
    p = _write(tmp_path / "bad2.yaml", "train:\n  compile: 1\n")
    with pytest.raises(ConfigError, match=r"'train.compile' in .*bad2\.yaml: expected bool, got int 1"):
        load_config(p)
    p = _write(tmp_path / "bad3.yaml", "optim:\n  betas: [0.9, x]\n")
    with pytest.raises(ConfigError, match=r"'optim.betas\[1\]' in .*bad3\.yaml: expected float"):
        load_config(p)
    p = _write(tmp_path / "bad4.yaml", "optim: 3\n")
    with pytest.raises(ConfigError, match=r"'optim' in .*bad4\.yaml: expected a section"):
        load_config(p)


def test_override_errors_name_opt():
    with pytest.raises(ConfigError, match=r"'train.epochs' in --opt: expected int, got str 'five'"):
        load_config(None, ["train.epochs=five"])
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epochz' in --opt"):
        load_config(None, ["train.epochz=5"])
    with pytest.raises(ConfigError, match=r"expected key=value"):
        load_config(None, ["train.epochs"])
    assert parse_overrides(["a.b=1", "a.c=x y", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x y"}, "d": [1, 2]}


@pytest.mark.parametrize("opt, message", [
    ("optim.lr=-0.1", r"optim.lr = -0.1, expected > 0"),
    ("optim.lr=0", r"optim.lr = 0.0, expected > 0"),
    ("train.epochs=0", r"train.epochs = 0, expected >= 1"),
    ("data.batch_size=0", r"data.batch_size = 0, expected >= 1"),
    ("optim.weight_decay=-1", r"optim.weight_decay = -1.0, expected >= 0"),
    ("optim.accum_steps=0", r"optim.accum_steps = 0, expected >= 1"),
    ("optim.layer_decay=1.5", r"optim.layer_decay = 1.5, expected <= 1"),
    ("model.drop_path_rate=1.0", r"model.drop_path_rate = 1.0, expected < 1"),
    ("aug.label_smoothing=-0.1", r"aug.label_smoothing = -0.1, expected >= 0"),
    ("optim.lr_mult={backbone: -1}", r"optim.lr_mult.backbone = -1.0, expected >= 0"),
    ("optim.betas=[0.9, 1.0]", r"optim.betas = \[0.9, 1.0\], expected two numbers in \[0, 1\)"),
    ("sched.warmup_lr=-1e-6", r"sched.warmup_lr = -1e-06, expected >= 0"),
    ("train.eval_interval=0", r"train.eval_interval = 0, expected >= 1"),
])
def test_out_of_range_values_fail_fast(opt, message):
    with pytest.raises(ConfigError, match=r"out of range: " + message):
        load_config(None, [opt])


def test_odd_batch_with_mixup():
    with pytest.raises(ConfigError, match=r"data.batch_size = 33, expected an even number when mixup/cutmix is on"):
        load_config(None, ["data.batch_size=33"])
    assert load_config(None, ["data.batch_size=33", "aug.mixup=0", "aug.cutmix=0"]).data.batch_size == 33


def test_bad_choice_lists_choices():
    with pytest.raises(ConfigError, match=r"'train.amp' in --opt: expected one of 'auto', 'none', 'bf16', 'fp16', "
                                          r"got str 'fp8'"):
        load_config(None, ["train.amp=fp8"])
    with pytest.raises(ConfigError, match=r"'sched.name' in --opt: expected one of 'cosine'"):
        load_config(None, ["sched.name=linear"])


def test_missing_file_parse_error_and_circular_base(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
    p = _write(tmp_path / "syntax.yaml", "train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"cannot parse YAML in .*syntax\.yaml"):
        load_config(p)
    p = _write(tmp_path / "nobase.yaml", "_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"_base_ file not found: .*missing\.yaml"):
        load_config(p)
    _write(tmp_path / "x.yaml", "_base_: y.yaml\n")
    _write(tmp_path / "y.yaml", "_base_: x.yaml\n")
    with pytest.raises(ConfigError, match=r"circular _base_ chain"):
        load_config(str(tmp_path / "x.yaml"))


@dataclass
class _VideoData(DataConfig):
    clip_len: int = fld(32, ge=1)
    frame_interval: int = fld(2, ge=1)
    list_file: str = ""


@dataclass
class _VideoConfig(ClassificationConfig):
    data: _VideoData = field(default_factory=_VideoData)


def test_schema_extension(tmp_path):
    p = _write(tmp_path / "v.yaml", "data:\n  clip_len: 8\n  batch_size: 4\n  list_file: train.txt\n")
    cfg = load_config(p, ["data.frame_interval=4"], schema=_VideoConfig)
    assert isinstance(cfg.data, _VideoData)
    assert (cfg.data.clip_len, cfg.data.frame_interval, cfg.data.batch_size) == (8, 4, 4)
    assert cfg.data.list_file == "train.txt"
    with pytest.raises(ConfigError, match=r"data.clip_len = 0, expected >= 1"):
        load_config(p, ["data.clip_len=0"], schema=_VideoConfig)
    with pytest.raises(ConfigError, match=r"unknown config key 'data.clip_len' in .*v\.yaml"):
        load_config(p)  # the base schema has no clip_len


def test_out_of_range_value_names_the_file_it_came_from(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  epochs: -3\n")
    with pytest.raises(ConfigError, match=r"train.epochs = -3, expected >= 1 \(set in .*bad.yaml\)"):
        load_config(str(p))


def test_unset_model_fields_keep_the_variants_values():
    from core.engine import build_model
    cfg = load_config(None, ["model.name=swin_b", "model.kwargs={depths: [1, 1], num_heads: [1, 2], embed_dim: 8}"])
    assert cfg.model.drop_path_rate is None
    model = build_model(cfg, 10)
    last = model.layers[-1].blocks[-1].drop_path2
    assert math.isclose(last.drop_prob, 0.5)  # Swin-B's own rate, not a schema default
    cfg = load_config(None, ["model.name=swin_b", "model.drop_path_rate=0.2",
                             "model.kwargs={depths: [1, 1], num_heads: [1, 2], embed_dim: 8}"])
    assert math.isclose(build_model(cfg, 10).layers[-1].blocks[-1].drop_path2.drop_prob, 0.2)


def test_a_mapping_given_with_opt_replaces_the_inherited_one(tmp_path):
    p = _write(tmp_path / "r.yaml", "model:\n  pretrained_kwargs: {inflate: true, strict: false}\n"
                                    "  kwargs: {depths: [2, 2], embed_dim: 32}\n")
    assert load_config(p).model.pretrained_kwargs == {"inflate": True, "strict": False}
    cfg = load_config(p, ["model.pretrained_kwargs={}", "model.kwargs={depths: [1]}"])
    assert cfg.model.pretrained_kwargs == {} and cfg.model.kwargs == {"depths": [1]}
    # a dotted key still sets a single entry
    assert load_config(p, ["model.kwargs.embed_dim=8"]).model.kwargs == {"depths": [2, 2], "embed_dim": 8}


def test_a_run_config_reads_back_with_its_own_schema(tmp_path):
    from core.video.config import VideoConfig
    cfg = _load_config(None, ["name=run", "data.clip_len=4"], VideoConfig)
    p = _write(tmp_path / "config.yaml", dump_config(cfg))
    back = _load_config(p)
    assert isinstance(back, VideoConfig) and back == cfg
    _write(tmp_path / "evil.yaml", "_schema_: os.system\n")
    with pytest.raises(ConfigError, match=r"_schema_ = 'os.system' is not a config schema"):
        _load_config(str(tmp_path / "evil.yaml"))


# ------------------------------------------------------------------------------------------------ data-set names
def _registered(kind: str) -> list[str]:
    """The names a data section accepts, read from the registries (the one source of them)."""
    from core.classification.data import image_set_names
    from core.video.sources import video_set_names
    from simmim.data import PRETRAIN_SETS
    return {"images": image_set_names(), "clips": video_set_names(),
            "moby": image_set_names(raw_splits=True) + video_set_names(),
            "simmim": [*PRETRAIN_SETS, *video_set_names()]}[kind]


@pytest.mark.parametrize("schema, recipe, kind", [
    ("core.classification.config.ClassificationConfig", "swin/tiny_digits.yaml", "images"),
    ("core.classification.config.ClassificationConfig", "swin_mlp/tiny_digits.yaml", "images"),
    ("core.video.config.VideoConfig", "video_swin/tiny_moving_shapes.yaml", "clips"),
    ("moby.config.MoBYConfig", "moby/tiny_shapes.yaml", "moby"),
    ("moby.config.MoBYConfig", "moby/linear_tiny_moving_shapes.yaml", "moby"),
    ("moby.config.FinetuneConfig", "moby/finetune_tiny_shapes.yaml", "images"),
    ("simmim.config.SimMIMConfig", "simmim/tiny_digits.yaml", "simmim"),
    ("simmim.config.ImageFinetuneConfig", "simmim/tiny_digits_ft.yaml", "images"),
    ("simmim.config.VideoFinetuneConfig", "simmim/tiny_spin_zoom_ft.yaml", "clips"),
], ids=lambda v: v.rsplit(".", 1)[-1] if "config." in v else v)
def test_an_unregistered_data_set_is_a_start_up_error_listing_the_registered_ones(schema, recipe, kind):
    import importlib
    module, _, name = schema.rpartition(".")
    schema, path, names = getattr(importlib.import_module(module), name), os.path.join(CONFIGS, recipe), _registered(kind)
    assert _load_config(path, None, schema).data.dataset in names  # the recipe itself names a registered set
    with pytest.raises(ConfigError, match=r"config value out of range: data.dataset = 'nope', expected ") as e:
        _load_config(path, ["data.dataset=nope"], schema)
    assert str(e.value).endswith(": " + ", ".join(sorted(names)))
    for name in names:  # every listed set passes
        assert _load_config(path, [f"data.dataset={name}"], schema).data.dataset == name


def test_moby_refuses_an_image_set_without_raw_splits_naming_what_it_builds():
    from moby.config import MoBYConfig
    with pytest.raises(ConfigError, match=r"data.dataset = 'digits', expected a data set MoBY builds .*: "
                                          r"imagefolder, kinetics, moving_shapes, ramp, shapes, .* \('digits' is a "
                                          r"registered image set without raw labelled splits"):
        _load_config(os.path.join(CONFIGS, "moby", "tiny_shapes.yaml"), ["data.dataset=digits"], MoBYConfig)


def test_a_package_registers_a_set_and_the_configs_accept_it():
    from core.classification.data import IMAGE_SETS, ImageSet, register_image_set
    from core.video.config import VideoConfig
    from core.video.sources import GENERATED, register_generated
    with pytest.raises(ConfigError, match="data.dataset = 'mine'"):
        load_config(None, ["data.dataset=mine"])
    register_image_set("mine", ImageSet(lambda cfg: (None, None, 0)))
    register_generated("my_clips", lambda root, **kw: root)
    try:
        assert load_config(None, ["data.dataset=mine"]).data.dataset == "mine"
        assert _load_config(None, ["data.dataset=my_clips"], VideoConfig).data.dataset == "my_clips"
    finally:
        del IMAGE_SETS["mine"], GENERATED["my_clips"]


def test_the_shapes_set_builds_from_any_image_recipe():
    """Registered in core next to digits: the MoBY fine-tuning recipe and core.train's schema build it alike."""
    from core.classification.data import build_image_datasets
    from core.classification.images import recipe_classes
    from moby.config import FinetuneConfig
    opts = ["data.num_train=12", "data.num_test=6", "data.img_size=16"]
    cfg = _load_config(os.path.join(CONFIGS, "moby", "finetune_tiny_shapes.yaml"), opts, FinetuneConfig)
    train, val, n = build_image_datasets(cfg)
    assert (len(train), len(val), n, val.split) == (12, 6, 6, "test") and train[0][0].shape == (3, 16, 16)
    assert recipe_classes(cfg) == list(train.classes)
    cfg = load_config(None, ["data.dataset=shapes", "data.num_train=8", "data.num_val=4", "data.img_size=16",
                             "data.shapes={num_classes: 3}"])
    train, val, n = build_image_datasets(cfg)
    assert (len(train), len(val), n, val.split) == (8, 4, 3, "val")


def test_a_shipped_recipe_loads_from_any_folder(tmp_path, monkeypatch):
    """``--config configs/...`` works outside the checkout (the shipped recipe); a missing file is still named."""
    from core.engine.config import ConfigError, load_config
    from simmim.config import VideoFinetuneConfig
    monkeypatch.chdir(tmp_path)
    cfg = load_config("configs/simmim/tiny_moving_shapes_ft.yaml", [], VideoFinetuneConfig)
    assert cfg.model.name.startswith("video_")
    with pytest.raises(ConfigError, match="config file not found: .*configs/nope.yaml"):
        load_config("configs/nope.yaml", [])
