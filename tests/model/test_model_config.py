from __future__ import annotations

import json

import pytest

from dualpath.model import BACKBONES, ModelConfig


def test_defaults_are_the_paper():
    cfg = ModelConfig()
    assert (cfg.arch, cfg.backbone, cfg.fusion, cfg.cbam, cfg.stop_gradient) == (
        "dualpath", "densenet121", "multiply", True, True)
    assert cfg.num_classes == 20
    spec = BACKBONES["densenet121"]
    assert (spec.growth_rate, spec.block_config, spec.num_init_features) == (32, (6, 12, 24, 16), 64)


def test_round_trips_through_json(tmp_path):
    cfg = ModelConfig(arch="cae", backbone="densenet_small", fusion="concat", cbam=False, hidden=64, dropout=0.1)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_path_pretrained_is_stored_as_string(tmp_path):
    cfg = ModelConfig(backbone="densenet_tiny", pretrained=tmp_path / "w.pth")
    assert cfg.pretrained == str(tmp_path / "w.pth") and cfg.uses_pretrained
    json.dumps(cfg.to_dict())


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"arch": "unet"}, "arch must be one of"),
        ({"backbone": "resnet50"}, "backbone must be one of"),
        ({"fusion": "add"}, "fusion must be one of"),
        ({"backbone": "densenet_tiny", "pretrained": "imagenet"}, "only for backbone 'densenet121'"),
        ({"arch": "cae", "pretrained": "imagenet"}, "no pretrained backbone"),
        ({"pretrained": ""}, "pretrained must be"),
        ({"hidden": 0}, "hidden must be a positive integer"),
        ({"num_classes": 2.5}, "num_classes must be a positive integer"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ],
)
def test_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


def test_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['attention'\]"):
        ModelConfig.from_dict({"arch": "dualpath", "attention": True})


def test_the_medium_backbone_is_the_small_one_deeper():
    """densenet_medium: the small backbone's growth and stem, deeper blocks; its feature width follows DenseNet's rule
    (each block adds layers x growth, each transition halves)."""
    import torch

    from dualpath.model import DenseNetBackbone

    small, medium = BACKBONES["densenet_small"], BACKBONES["densenet_medium"]
    assert (medium.growth_rate, medium.num_init_features) == (small.growth_rate, small.num_init_features)
    assert all(m > s for m, s in zip(medium.block_config, small.block_config))
    width = medium.num_init_features
    for i, layers in enumerate(medium.block_config):
        width += layers * medium.growth_rate
        width = width // 2 if i < 3 else width
    net = DenseNetBackbone(medium, "imagenet")
    assert net.out_width == width == 258
    assert net.embed(torch.zeros(2, 3, 64, 64)).shape == (2, 258)
    assert sum(p.numel() for p in net.parameters()) > sum(p.numel() for p in DenseNetBackbone(small, "imagenet").parameters())
