"""The shipped scene-pretrained backbone (weights/) and how a weights path is found, checked and refused."""
from __future__ import annotations

import json
import os

import pytest
import torch
from torchvision.models import DenseNet

from dualpath.files import file_sha256
from dualpath.model import BACKBONES, build_model
from dualpath.model import weights as W
from train.config import CPU, PRESETS
from train.loop import model_config, plan_phases
from train.pretrain import CARD_FORMAT, PRETRAIN_SEED_START


def _fake_project(tmp_path, monkeypatch, cards: dict[str, tuple[str, str]]):
    """A project root whose weights/<name>/backbone.pth (a real densenet_tiny state dict) + card say (backbone, stem)."""
    spec = BACKBONES["densenet_tiny"]
    state = {k: v for k, v in DenseNet(spec.growth_rate, spec.block_config, spec.num_init_features).state_dict().items()
             if k.startswith("features.")}
    for name, (backbone, stem) in cards.items():
        folder = tmp_path / "root" / "weights" / name
        folder.mkdir(parents=True)
        torch.save(state, folder / "backbone.pth")
        (folder / "backbone.json").write_text(json.dumps({"format": CARD_FORMAT, "backbone": backbone, "stem": stem}))
    monkeypatch.setattr(W, "PROJECT_ROOT", tmp_path / "root")
    monkeypatch.setattr(W, "SHIPPED_WEIGHTS", tmp_path / "root" / "weights")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative "weights/..." does not exist from here
    return tmp_path / "root"


def test_a_relative_weights_path_is_found_from_the_project_root(tmp_path, monkeypatch):
    root = _fake_project(tmp_path, monkeypatch, {"tiny": ("densenet_tiny", "imagenet")})
    assert W.resolve_source("weights/tiny/backbone.pth") == str(root / "weights/tiny/backbone.pth")
    assert W.resolve_source("weights/nothing.pth") == "weights/nothing.pth"  # the loader then says it is missing
    assert W.resolve_source("none") == "none" and W.resolve_source("imagenet") == "imagenet"
    model = build_model(model_config(PRESETS["tiny"].with_overrides(pretrained="weights/tiny/backbone.pth")))
    assert model.pretrained_loaded


def test_a_refusal_names_the_file_that_fits(tmp_path, monkeypatch):
    root = _fake_project(tmp_path, monkeypatch, {"tiny": ("densenet_tiny", "imagenet"),
                                                 "tiny3": ("densenet_tiny", "3x3")})
    assert W.fitting_weights("densenet_tiny", "3x3") == [root / "weights/tiny3/backbone.pth"]
    cfg = PRESETS["tiny"].with_overrides(pretrained="weights/tiny/backbone.pth", model_options={"stem": "3x3"})
    with pytest.raises(ValueError, match=r"the file that fits backbone 'densenet_tiny' with stem '3x3' is .*tiny3"):
        build_model(model_config(cfg))
    # no file fits: say how to make one
    cfg = PRESETS["tiny"].with_overrides(pretrained="weights/tiny/backbone.pth", backbone="densenet_small")
    with pytest.raises(ValueError, match="no shipped weights fit backbone 'densenet_small'.*python -m train pretrain"):
        build_model(model_config(cfg))


def test_a_file_without_card_that_does_not_fit_also_names_the_fitting_file(tmp_path, monkeypatch):
    root = _fake_project(tmp_path, monkeypatch, {"tiny": ("densenet_tiny", "imagenet")})
    bare = tmp_path / "bare.pth"
    torch.save(torch.load(root / "weights/tiny/backbone.pth", weights_only=True), bare)  # same tensors, no card
    cfg = PRESETS["tiny"].with_overrides(pretrained=str(bare), backbone="densenet_small")
    with pytest.raises(ValueError, match="do not fit this DenseNet backbone.*no shipped weights fit"):
        build_model(model_config(cfg))


# -- the weights the cpu preset ships with -------------------------------------------------------------------------

def _shipped():
    path = W.PROJECT_ROOT / CPU.pretrained
    return path, json.loads(path.with_suffix(".json").read_text())


def test_the_cpu_preset_loads_the_shipped_scene_pretrained_backbone_and_runs_both_phases():
    assert CPU.pretrained == "weights/densenet_small/backbone.pth"
    path, card = _shipped()
    assert card["format"] == CARD_FORMAT and (card["backbone"], card["stem"]) == (CPU.backbone, "imagenet")
    assert card["weights_sha256"] == file_sha256(path)  # the card describes this very file
    assert card["command"].startswith("python -m train pretrain")  # made by the project's own command
    assert card["seed_range"]["held_out"] == PRETRAIN_SEED_START and card["seed_range"]["train"][0] > PRETRAIN_SEED_START
    seen = card["scenes_seen"] + ((card.get("init") or {}).get("scenes_seen") or 0)  # a warm start's count too
    assert seen >= 1_000_000 and os.path.getsize(path) < 16 * 2**20
    model = build_model(model_config(CPU))
    assert model.pretrained_loaded
    state = torch.load(path, weights_only=True)
    for backbone in model.backbones():
        assert torch.equal(backbone.state_dict()["features.conv0.weight"], state["features.conv0.weight"])
    assert [p.number for p in plan_phases(CPU, model.pretrained_loaded)] == [1, 2]


def test_the_shipped_backbone_recognises_held_out_scenes_better_than_chance():
    """Its own held-out evaluation (seed PRETRAIN_SEED_START, never trained on) as the card records it."""
    _, card = _shipped()
    noisy = card["held_out"]["noisy"]
    assert card["held_out"]["scenes"] >= 1000
    assert noisy["macro_map"] > 0.5 and noisy["macro_auc"] > 0.8  # chance: mAP ~0.1, AUC 0.5


def test_the_shipped_whole_model_is_make_demos_start_and_fits_the_cpu_preset():
    """weights/dualpath_small: the Makefile's WHOLE, a `--model dualpath` pretraining warm-started from the shipped
    backbone's chain, loads into every weight of the cpu preset's model, and its card names its held-out SSIM."""
    import re

    makefile = (W.PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^WHOLE\s*\?=\s*weights/dualpath_small/model\.pth$", makefile, re.M)
    path = W.PROJECT_ROOT / "weights/dualpath_small/model.pth"
    card = W.read_model_card(str(path))
    assert card is not None and card["format"] == W.MODEL_CARD_FORMAT
    assert card["weights_sha256"] == file_sha256(path) and card["command"].startswith("python -m train pretrain")
    assert (card["arch"], card["backbone"], card["stem"]) == ("dualpath", CPU.backbone, "imagenet")
    # its own run, then the chain behind its --init (the backbone's scenes, or an earlier whole-model run's too)
    assert card["scenes_seen"] >= 500_000 and card["scenes_seen"] + card["init"]["scenes_seen"] >= 7_000_000
    assert card["seed_range"]["held_out"] == PRETRAIN_SEED_START and os.path.getsize(path) < 16 * 2**20
    noisy = card["held_out"]["noisy"]
    assert noisy["macro_map"] > 0.5 and 0.5 < noisy["ssim"] < 1.0
    model = build_model(model_config(CPU.with_overrides(pretrained=str(path))))
    state = torch.load(path, weights_only=True)
    assert model.pretrained_loaded and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_cpu_preset_without_weights_and_refusals_through_the_cli(tmp_path, capsys):
    from train.arguments import resolve_config
    from train.cli import build_parser, main

    def resolve(*argv):
        return resolve_config(build_parser().parse_args(["--out", str(tmp_path / "r"), *argv]))

    assert resolve("--preset", "cpu").pretrained == CPU.pretrained
    assert resolve("--preset", "cpu", "--pretrained", "none").pretrained == "none"
    assert resolve("--preset", "cpu", "--model", "cae").pretrained == "none"  # the CAE baseline stays random
    argv = ["--preset", "cpu", "--backbone", "densenet_tiny", "--n-scenes", "40", "--data-root", str(tmp_path / "d"),
            "--extra-scenes", "0", "--out", str(tmp_path / "run"), "--device", "cpu", "--threads", "1", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no shipped weights fit backbone 'densenet_tiny'" in err
