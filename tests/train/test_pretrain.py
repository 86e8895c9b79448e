"""`python -m train pretrain` at tiny size: seeds, outputs and card, loading into the models, resume, bad input."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from dualpath.files import file_sha256
from dualpath.model import ModelConfig, build_model
from train import pretrain
from train.experiment import run_experiment
from train.loop import model_config, plan_phases
from pretrain_helpers import TINY  # same folder (tests/train/pretrain_helpers.py)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    assert pretrain.main([*TINY, "--scenes", "48", "--out", str(out)]) == 0
    return out


def test_seed_range_lies_above_every_other_set(monkeypatch):
    from calibration.sets import ACCURACY_CONTROL_SEED, CALIBRATION_SEED
    from runtime.drift.sets import DRIFT_SEED
    from train.config import TRAINING_SEEDS_END

    pretrain.check_seeds_disjoint()
    assert pretrain.chunk_seed(0) == 10_000_000
    assert min(pretrain.chunk_seed(0), pretrain.chunk_seed(1)) > max(
        TRAINING_SEEDS_END, CALIBRATION_SEED, ACCURACY_CONTROL_SEED, DRIFT_SEED)
    monkeypatch.setattr(pretrain, "PRETRAIN_SEED_START", DRIFT_SEED)  # a range that would repeat the drift set
    with pytest.raises(AssertionError, match="not above"):
        pretrain.check_seeds_disjoint()


def test_outputs_are_torchvision_features_and_a_card(pretrained):
    state = torch.load(pretrained / "backbone.pth", weights_only=True)
    card = json.loads((pretrained / "backbone.json").read_text())
    assert state and all(k.startswith("features.") for k in state)
    assert (card["backbone"], card["stem"], card["scenes_seen"], card["chunks"]) == ("densenet_tiny", "imagenet", 48, 2)
    assert card["seed_range"] == {"train": [10_000_001, 10_000_002], "held_out": 10_000_000,
                                  "scenes_per_seed": "0..chunk-1 of each seed"}
    assert 0.0 <= card["held_out"]["noisy"]["macro_map"] <= 1.0 and card["held_out"]["scenes"] == 20
    assert card["weights_sha256"] == file_sha256(pretrained / "backbone.pth")
    assert card["command"].startswith("python -m train pretrain --backbone densenet_tiny")
    assert card["machine"]["cores"] >= 1 and card["wall_s"] > 0


def test_weights_load_into_every_densenet_and_phase_1_runs(pretrained, scenes, tiny_cfg, opts, tmp_path):
    path = str(pretrained / "backbone.pth")
    state = torch.load(path, weights_only=True)
    key = "features.conv0.weight"
    for arch in ("dualpath", "densenet"):
        model = build_model(ModelConfig(arch=arch, backbone="densenet_tiny", pretrained=path))
        assert model.pretrained_loaded and len(model.backbones()) == (2 if arch == "dualpath" else 1)
        for backbone in model.backbones():
            assert torch.equal(backbone.state_dict()[key], state[key])
    cae = build_model(ModelConfig(arch="cae", backbone="densenet_tiny"))
    assert not cae.pretrained_loaded  # the CAE baseline stays random
    cfg = tiny_cfg.with_overrides(pretrained=path)
    assert [p.number for p in plan_phases(cfg, build_model(model_config(cfg)).pretrained_loaded)] == [1, 2]
    run_experiment(cfg.with_overrides(epochs=1, phase1_epochs=1), tmp_path / "run", scenes, opts)
    history = torch.load(tmp_path / "run/fold0/last.pt", weights_only=True)["state"]["history"]
    assert [row["phase"] for row in history] == [1]


@pytest.mark.parametrize(("backbone", "stem", "says"), [
    ("densenet_small", "imagenet", "--backbone densenet_tiny --stem imagenet"),
    ("densenet_tiny", "3x3", "--backbone densenet_tiny --stem imagenet"),
])
def test_a_card_for_another_backbone_or_stem_is_refused(pretrained, backbone, stem, says):
    config = ModelConfig(arch="densenet", backbone=backbone, stem=stem, pretrained=str(pretrained / "backbone.pth"))
    with pytest.raises(ValueError, match=says):
        build_model(config)


def test_the_training_cli_refuses_a_mismatch_with_one_line(pretrained, scenes, tmp_path, capsys):
    from train.cli import main

    argv = ["--preset", "tiny", "--data", str(scenes.path), "--out", str(tmp_path / "run"), "--device", "cpu",
            "--threads", "1", "--quiet", "--stem", "3x3", "--weights", str(pretrained / "backbone.pth")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pretrained for backbone 'densenet_tiny' with stem 'imagenet'" in err


def test_resume_continues_after_the_last_chunk_and_disk_chunks(tmp_path):
    out = str(tmp_path / "run")
    assert pretrain.main([*TINY, "--scenes", "24", "--generate", "disk", "--out", out]) == 0
    chunks = tmp_path / "run/chunks"
    assert [p.name for p in chunks.iterdir()] == ["chunk000000"]  # trained chunks are removed, the held-out kept
    assert (chunks / "chunk000000/manifest.json").is_file()
    assert pretrain.main([*TINY, "--scenes", "48", "--out", out]) == 2  # no --resume: refused
    assert pretrain.main([*TINY, "--scenes", "48", "--out", out, "--resume"]) == 0
    card = json.loads((tmp_path / "run/backbone.json").read_text())
    assert (card["chunks"], card["scenes_seen"]) == (2, 48)
    other = [*TINY, "--scenes", "72", "--out", out, "--resume", "--lr", "0.01"]
    assert pretrain.main(other) == 2  # another configuration


def test_first_chunk_goes_on_past_the_chunks_a_warm_start_saw(pretrained, tmp_path, monkeypatch):
    from train import pretrain_run

    asked = []
    get = pretrain_run.ChunkSource.get

    def recording(self, k, prefetch=None):
        asked.append(k)
        return get(self, k, prefetch)

    monkeypatch.setattr(pretrain_run.ChunkSource, "get", recording)
    out = str(tmp_path / "run")
    warm = [*TINY, "--init", str(pretrained / "pretrain.pt"), "--out", out]
    assert pretrain.main([*warm, "--first-chunk", "3", "--scenes", "24"]) == 0
    assert pretrain.main([*warm, "--first-chunk", "3", "--scenes", "48", "--resume"]) == 0
    assert asked == [3, 0, 4, 0]  # the stream's chunks 3 and 4 (the warm start saw 1 and 2); 0: the held-out set
    card = json.loads((tmp_path / "run/backbone.json").read_text())
    assert (card["chunks"], card["scenes_seen"]) == (2, 48)
    assert card["seed_range"]["train"] == [10_000_003, 10_000_004] and card["seed_range"]["held_out"] == 10_000_000
    assert card["training"]["first_chunk"] == 3
    assert pretrain.main([*warm, "--first-chunk", "5", "--scenes", "72", "--resume"]) == 2  # another K: refused


@pytest.mark.parametrize("argv", [
    ["--backbone", "densenet_tiny"],  # neither --scenes nor --budget-minutes
    ["--scenes", "10", "--first-chunk", "0"],  # chunk 0 is the held-out set
    ["--backbone", "resnet50", "--scenes", "10"],
    ["--stem", "5x5", "--scenes", "10"],
    ["--scenes", "10", "--chunk", "0"],
    ["--scenes", "10", "--checkpoint-minutes", "-1"],
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    assert pretrain.main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")


def test_python_m_train_pretrain_is_the_entry_point(tmp_path):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "train", "pretrain", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: pass one of --scenes N or --budget-minutes M to size the run"


def test_learning_rate_decays_by_scenes_or_by_time():
    by_scenes = pretrain.PretrainConfig(scenes=100, chunk=50, lr=1.0)
    assert pretrain.lr_at(by_scenes, 0, 999.0) == 1.0
    assert pretrain.lr_at(by_scenes, 50, 0.0) == pytest.approx(0.525)
    assert pretrain.lr_at(by_scenes, 100, 0.0) == pytest.approx(0.05)
    by_time = pretrain.PretrainConfig(budget_minutes=1.0, lr=1.0)
    assert pretrain.lr_at(by_time, 10**6, 30.0) == pytest.approx(0.525)
    assert pretrain.lr_at(by_time, 0, 120.0) == pytest.approx(0.05)


def test_the_scene_workers_never_import_torch():
    import subprocess

    code = "import sys, train.pretrain_scenes as w; w.render_images(10_000_001, 0, 2); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "False"


def test_the_card_names_each_class_ap(pretrained):
    from dualpath.contract import CLASS_NAMES

    noisy = json.loads((pretrained / "backbone.json").read_text())["held_out"]["noisy"]
    assert list(noisy["per_class_ap"]) == list(CLASS_NAMES)
    aps = [v for v in noisy["per_class_ap"].values() if v is not None]
    assert aps and all(0.0 <= v <= 1.0 for v in aps)
    assert sum(aps) / len(aps) == pytest.approx(noisy["macro_map"], abs=1e-3)


@pytest.mark.parametrize("source", ["backbone.pth", "pretrain.pt"])
def test_init_warm_starts_another_stem_from_a_run(pretrained, tmp_path, source):
    out = tmp_path / "warm"
    argv = [*TINY, "--stem", "3x3", "--scenes", "24", "--lr", "1e-9", "--init", str(pretrained / source)]
    assert pretrain.main([*argv, "--out", str(out)]) == 0
    card = json.loads((out / "backbone.json").read_text())
    fresh = ["backbone.features.conv0.weight"] + (["head.bias", "head.weight"] if source == "backbone.pth" else [])
    assert card["init"]["fresh"] == fresh and card["init"]["sha256"] == file_sha256(pretrained / source)
    assert card["init"]["scenes_seen"] == 48 and card["stem"] == "3x3" and card["training"]["init"].endswith(source)
    old, new = (torch.load(p, weights_only=True) for p in (pretrained / "backbone.pth", out / "backbone.pth"))
    # lr 1e-9: the dense blocks' weights are the warm start's (BatchNorm statistics move with the new stem's inputs)
    key = "features.denseblock2.denselayer1.conv1.weight"
    assert torch.allclose(old[key], new[key], atol=1e-6)
    assert new["features.conv0.weight"].shape[-1] == 3 and old["features.conv0.weight"].shape[-1] == 7
    # resuming keeps the record; another --init is another configuration
    assert pretrain.main([*argv, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "backbone.json").read_text())["init"] == card["init"]
    assert pretrain.main([*TINY, "--stem", "3x3", "--scenes", "48", "--lr", "1e-9", "--out", str(out), "--resume"]) == 2


def test_init_of_another_size_or_no_file_is_one_line(pretrained, tmp_path, capsys):
    base = [*TINY, "--scenes", "24", "--out", str(tmp_path / "run")]
    assert pretrain.main([*base[:1], "densenet_small", *base[2:], "--init", str(pretrained / "backbone.pth")]) == 2
    assert pretrain.main([*base, "--init", str(tmp_path / "none.pth")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "does not fit backbone 'densenet_small'" in lines[0] and "no such file" in lines[1]
