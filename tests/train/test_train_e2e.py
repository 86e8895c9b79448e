"""End-to-end tiny runs through `main` (the code users run): outputs, checkpoints, phases, reproducibility."""
from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import DenseNet

from dualpath.metrics import METRIC_KEYS
from dualpath.model import BACKBONES
from train.checkpoint import load_model
from train.cli import main
from train.data import Normalizer, to_device
from train.evaluate import compute_metrics, predict
from train.experiment import run_experiment
from train.losses import MultitaskLoss
from train.splits import load_splits

CHECKPOINT_KEYS = {"model", "model_config", "class_names", "preprocessing", "train_config", "epoch", "optimizer", "metrics"}


def test_run_folder_has_checkpoints_metrics_report_and_plots(tiny_run):
    for name in ("config.json", "splits.json", "best.pt", "fold0/best.pt", "fold0/last.pt", "fold0/log.csv",
                 "metrics.json", "report.md", "train.log", "predictions.npz"):
        assert (tiny_run / name).is_file(), name
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert set(METRIC_KEYS) <= set(metrics)
    assert all(isinstance(metrics[k], float) for k in METRIC_KEYS)
    assert {"folds", "cv_mean", "cv_std", "test_std", "per_class"} <= set(metrics)
    assert len(metrics["per_class"]) == 20
    report = (tiny_run / "report.md").read_text()
    for png in ("roc_curves.png", "mlcm.png", "reconstructions.png", "training_curves.png"):
        assert (tiny_run / png).stat().st_size > 10_000
        assert f"({png})" in report
    csv_lines = (tiny_run / "fold0/log.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,phase,lr,train_total") and len(csv_lines) == 3


def test_random_init_skips_phase_1_and_says_so(tiny_run):
    log = (tiny_run / "train.log").read_text()
    assert "phase 1 skipped: no pretrained weights were loaded" in log
    assert "phase 2: epochs 1-2" in log


def test_checkpoint_loads_weights_only_and_reproduces_its_metrics(tiny_run, scenes):
    ckpt = torch.load(tiny_run / "fold0/best.pt", weights_only=True)
    assert CHECKPOINT_KEYS <= set(ckpt)
    assert ckpt["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and len(ckpt["class_names"]) == 20
    assert ckpt["model_config"]["backbone"] == "densenet_tiny"

    model, _ = load_model(tiny_run / "fold0/best.pt")
    splits = load_splits(tiny_run / "splits.json")
    pred = predict(model, MultitaskLoss(), to_device(scenes, torch.device("cpu")), splits.folds[0].val,
                   normalizer=Normalizer(torch.device("cpu"), channels_last=True), batch_size=64)
    again = compute_metrics(pred, scenes.labels, scenes.clean)
    for key in METRIC_KEYS:
        assert again[key] == pytest.approx(ckpt["metrics"][key], abs=1e-5), key
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["folds"][0]["val"]["macro_map"] == pytest.approx(ckpt["metrics"]["macro_map"], abs=1e-5)


def _local_weights(path):
    spec = BACKBONES["densenet_tiny"]
    net = DenseNet(growth_rate=spec.growth_rate, block_config=spec.block_config,
                   num_init_features=spec.num_init_features, bn_size=spec.bn_size)
    torch.save(net.state_dict(), path)
    return {k: v.clone() for k, v in net.features.state_dict().items()}


def test_local_weights_run_phase_1_frozen_then_phase_2(scenes, tiny_cfg, opts, tmp_path):
    weights = _local_weights(tmp_path / "densenet_tiny.pth")
    cfg = tiny_cfg.with_overrides(pretrained=str(tmp_path / "densenet_tiny.pth"))
    seen = {}

    def snapshot(end):
        backbone = end.model.backbones()[0]
        seen[end.epoch] = {k: v.detach().clone() for k, v in backbone.state_dict().items()}

    run_experiment(cfg, tmp_path / "run", scenes, opts, hooks=(snapshot,))
    log = (tmp_path / "run/train.log").read_text()
    assert "phase 1: epochs 1-1, lr 0.001, backbones frozen except BatchNorm" in log
    assert "phase 2: epochs 2-2" in log
    conv = next(k for k in weights if k.endswith("conv0.weight"))
    norm = next(k for k in weights if k.endswith("norm0.weight"))
    key = next(k for k in seen[1] if k.endswith(conv))
    norm_key = next(k for k in seen[1] if k.endswith(norm))
    assert torch.equal(seen[1][key], weights[conv])  # frozen in phase 1
    assert not torch.equal(seen[1][norm_key], weights[norm])  # BatchNorm still learns
    assert not torch.equal(seen[2][key], weights[conv])  # trainable in phase 2
    history = torch.load(tmp_path / "run/fold0/last.pt", weights_only=True)["state"]["history"]
    assert [row["phase"] for row in history] == [1, 2]


def test_a_second_run_in_the_same_folder_is_refused(tiny_run, cli_args):
    assert main(cli_args(tiny_run)) == 2


def test_extra_scenes_join_only_the_training_part(scenes, tiny_cfg, opts, tmp_path, train_log):
    import dataclasses

    from dualpath.scenes import SceneConfig, generate_dataset
    extra = generate_dataset(SceneConfig(), seed=5, n=20, out=tmp_path / "extra", workers=1, progress=False)
    cfg = dataclasses.replace(tiny_cfg, extra_scenes=16, extra_seed=5, epochs=1, phase1_epochs=0, augment="flips")
    seen = []
    hook = lambda end: seen.append(end.record["epoch"])  # noqa: E731
    metrics = run_experiment(cfg, tmp_path / "run", scenes, opts, hooks=(hook,), extra=extra)
    saved = load_splits(tmp_path / "run" / "splits.json")  # the data set's own split, on its 60 scenes
    assert seen == [1] and metrics["n_test"] == len(saved.test)
    assert max(saved.test.max(), saved.folds[0].val.max(), saved.folds[0].train.max()) < len(scenes)
    n_train, n_val = len(saved.folds[0].train) + 16, len(saved.folds[0].val)  # the 16 extra join training only
    assert f"76 scenes: {len(saved.test)} test, folds of {n_train} train / {n_val} val" in train_log.text
    with pytest.raises(ValueError, match="16 extra training scenes but 0 were given"):
        run_experiment(cfg, tmp_path / "run2", scenes, opts)


def test_with_extra_training_scenes_appends_to_every_fold_and_nothing_else():
    import numpy as np

    from train.experiment import with_extra_training_scenes
    from train.splits import make_splits

    rng = np.random.default_rng(0)

    class Arrays:
        def __init__(self, n, fill):
            self.noisy = np.full((n, 64, 64, 3), fill, np.uint8)
            self.clean = self.noisy.copy()
            self.labels = (rng.random((n, 20)) < 0.15).astype(np.uint8)
            self.labels[:, 0] = 1

    base, extra = Arrays(60, 1), Arrays(30, 2)
    splits = make_splits(base.labels, folds=3, seed=0)
    combined, out = with_extra_training_scenes(base, splits, extra, 25)
    assert combined.noisy.shape[0] == 85 and (combined.noisy[60:] == 2).all() and (combined.noisy[:60] == 1).all()
    assert np.array_equal(out.test, splits.test)
    for before, after in zip(splits.folds, out.folds):
        assert np.array_equal(after.val, before.val)
        assert np.array_equal(after.train, np.concatenate([before.train, np.arange(60, 85)]))
