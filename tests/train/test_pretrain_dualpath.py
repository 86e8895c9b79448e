"""`python -m train pretrain --model dualpath` at tiny size: the whole model on the scene stream, its card, every weight
loaded by `python -m train --pretrained model.pth`, warm starts and resume, mismatches refused in one line."""
from __future__ import annotations

import json
import re

import pytest
import torch

from dualpath.files import file_sha256
from dualpath.model import ModelConfig, build_model
from train import pretrain
from train.experiment import run_experiment
from train.loop import model_config, plan_phases
from pretrain_helpers import TINY  # same folder (tests/train/pretrain_helpers.py)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    out = tmp_path_factory.mktemp("backbone")
    assert pretrain.main([*TINY, "--scenes", "24", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def whole(tmp_path_factory, backbone):
    out = tmp_path_factory.mktemp("dualpath")
    argv = [*TINY, "--model", "dualpath", "--scenes", "48", "--init", str(backbone / "backbone.pth")]
    assert pretrain.main([*argv, "--out", str(out)]) == 0
    return out


def test_the_card_names_the_model_its_loss_and_its_held_out_ssim(whole, backbone):
    card = json.loads((whole / "model.json").read_text())
    assert card["format"].startswith("dualpath-scene-pretrained-model/")
    assert (card["arch"], card["backbone"], card["stem"], card["scenes_seen"]) == ("dualpath", "densenet_tiny",
                                                                                   "imagenet", 48)
    assert card["loss"] == {"cls_loss": "asl", "recon_weight": 1.5, "cls_weight": 2.0}  # the cpu preset's
    noisy = card["held_out"]["noisy"]
    assert 0.0 < noisy["ssim"] < 1.0 and noisy["psnr"] > 0 and 0.0 <= noisy["macro_map"] <= 1.0
    assert card["weights_sha256"] == file_sha256(whole / "model.pth")
    # the warm start: both DenseNets from the backbone run (24 scenes behind it), the rest fresh
    assert card["init"]["scenes_seen"] == 24 and card["init"]["sha256"] == file_sha256(backbone / "backbone.pth")
    assert card["init"]["fresh"] == ["decoder", "head", "reconstruction"]
    assert not (whole / "backbone.pth").exists()


def test_the_densenets_train_at_a_quarter_of_the_rate(whole, backbone):
    from train import pretrain_dualpath
    from train.loop import set_lr

    state = torch.load(whole / "model.pth", weights_only=True)
    start = torch.load(backbone / "backbone.pth", weights_only=True)
    key = "features.denseblock2.denselayer1.conv1.weight"
    for prefix in ("encoder.", "classifier_backbone."):
        assert not torch.equal(state[prefix + key], start[key])  # moved from the warm start
    cfg = pretrain.PretrainConfig(backbone="densenet_tiny", scenes=24, model="dualpath")
    model = build_model(ModelConfig(arch="dualpath", backbone="densenet_tiny"))
    optimizer = pretrain_dualpath.make_optimizer(model, cfg)
    set_lr(optimizer, 1e-3)
    rest, densenets = optimizer.param_groups
    assert {id(p) for p in densenets["params"]} == {id(p) for b in model.backbones() for p in b.parameters()}
    assert (rest["lr"], densenets["lr"]) == (1e-3, pytest.approx(2.5e-4))
    assert len(rest["params"]) + len(densenets["params"]) == len(list(model.parameters()))


def test_python_m_train_starts_every_weight_from_it_and_runs_both_phases(whole, scenes, tiny_cfg, opts, tmp_path,
                                                                        train_log):
    path = str(whole / "model.pth")
    saved = torch.load(path, weights_only=True)
    model = build_model(ModelConfig(arch="dualpath", backbone="densenet_tiny", pretrained=path))
    assert model.pretrained_loaded
    own = model.state_dict()
    assert set(own) == set(saved) and all(torch.equal(own[k], saved[k]) for k in own)
    cfg = tiny_cfg.with_overrides(pretrained=path)
    assert [p.number for p in plan_phases(cfg, build_model(model_config(cfg)).pretrained_loaded)] == [1, 2]
    run_experiment(cfg.with_overrides(epochs=1, phase1_epochs=1), tmp_path / "run", scenes, opts)
    record = json.loads((tmp_path / "run/config.json").read_text())["weights"]
    assert record == {"pretrained": path, "sha256": file_sha256(whole / "model.pth"), "whole_model": True}
    assert "every weight of the model starts from " + path in train_log.text


@pytest.mark.parametrize(("overrides", "says"), [
    ({"backbone": "densenet_small"}, "backbone 'densenet_tiny' (card) vs 'densenet_small'"),
    ({"arch": "densenet"}, "arch 'dualpath' (card) vs 'densenet'"),
    ({"fusion": "concat"}, "fusion 'multiply' (card) vs 'concat'"),
])
def test_a_model_of_another_configuration_is_refused(whole, overrides, says):
    config = ModelConfig(**{"arch": "dualpath", "backbone": "densenet_tiny", **overrides,
                            "pretrained": str(whole / "model.pth")})
    with pytest.raises(ValueError, match=re.escape(says)):
        build_model(config)


def test_a_file_that_does_not_match_its_card_is_one_clear_error(whole, tmp_path):
    (tmp_path / "model.json").write_text((whole / "model.json").read_text())
    state = torch.load(whole / "model.pth", weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "model.pth")
    with pytest.raises(ValueError, match="do not fit the model its card names"):
        build_model(ModelConfig(arch="dualpath", backbone="densenet_tiny", pretrained=str(tmp_path / "model.pth")))


@pytest.mark.parametrize("source", ["model.pth", "pretrain.pt"])
def test_init_from_a_dualpath_run_copies_every_weight_and_resume_keeps_it(whole, tmp_path, source):
    out = tmp_path / "warm"
    argv = [*TINY, "--model", "dualpath", "--scenes", "24", "--lr", "1e-9", "--init", str(whole / source)]
    assert pretrain.main([*argv, "--out", str(out)]) == 0
    card = json.loads((out / "model.json").read_text())
    assert card["init"]["fresh"] == [] and card["init"]["scenes_seen"] == 48 + 24  # the chain: backbone, dual-path
    old, new = (torch.load(p, weights_only=True) for p in (whole / "model.pth", out / "model.pth"))
    key = next(k for k in old if k.startswith("decoder.") and k.endswith("conv.0.0.weight"))
    assert torch.allclose(old[key], new[key], atol=1e-6)  # lr 1e-9: the warm start's decoder
    assert pretrain.main([*argv, "--scenes", "48", "--out", str(out), "--resume"]) == 0  # the last --scenes counts
    resumed = json.loads((out / "model.json").read_text())
    assert resumed["init"] == card["init"] and resumed["scenes_seen"] == 48
    # the other kind of model is another configuration
    assert pretrain.main([*TINY, "--scenes", "72", "--lr", "1e-9", "--init", str(whole / source), "--out", str(out),
                          "--resume"]) == 2


def test_bad_init_is_one_line(whole, backbone, tmp_path, capsys):
    base = [*TINY, "--model", "dualpath", "--scenes", "24", "--out", str(tmp_path / "run")]
    assert pretrain.main([*base, "--init", str(backbone / "pretrain.pt")]) == 2  # a classifier's checkpoint
    assert pretrain.main([*base, "--init", str(tmp_path / "none.pth")]) == 2
    assert pretrain.main([*base, "--backbone-lr-scale", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3
    assert "not the pretrain.pt of a `--model dualpath` pretraining" in lines[0]
    assert "no such file" in lines[1] and "--backbone-lr-scale must be in [0, 1]" in lines[2]
