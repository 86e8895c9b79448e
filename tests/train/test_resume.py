"""Interrupted runs: --resume continues where a kill stopped; a NaN loss stops cleanly and keeps the last good state."""
from __future__ import annotations

import functools
import json

import torch

import train.experiment
from train.cli import main


def _with_hooks(monkeypatch, *hooks):
    """Make `main` run its experiment with these epoch-end hooks (how tests stand in for a kill)."""
    monkeypatch.setattr(train.experiment, "run_experiment",
                        functools.partial(train.experiment.run_experiment, hooks=hooks))


def _interrupt_after_epoch_1(end):
    if end.epoch == 1:
        raise KeyboardInterrupt


def _poison_after_epoch_1(end):
    if end.epoch == 1:
        with torch.no_grad():
            next(end.model.parameters()).fill_(float("nan"))


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_resume_after_a_kill_continues_the_epoch_counter_and_matches_an_uninterrupted_run(
    monkeypatch, cli_args, tiny_run, tmp_path
):
    with monkeypatch.context() as m:
        _with_hooks(m, _interrupt_after_epoch_1)
        assert main(cli_args(tmp_path / "killed")) == 130
    killed = tmp_path / "killed"
    assert torch.load(killed / "fold0/last.pt", weights_only=True)["epoch"] == 1
    assert not (killed / "metrics.json").exists()

    assert main(["--resume", "--out", str(killed), "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    assert "fold 0: resuming after epoch 1 of 2" in (killed / "train.log").read_text()
    last = torch.load(killed / "fold0/last.pt", weights_only=True)
    assert last["epoch"] == 2 and [r["epoch"] for r in last["state"]["history"]] == [1, 2]
    assert len((killed / "fold0/log.csv").read_text().splitlines()) == 3
    # Same batches, RNG state and optimizer state: resuming changes nothing in the result.
    straight = _weights(tiny_run / "fold0/last.pt")
    for key, value in last["model"].items():
        assert torch.equal(value, straight[key]), key
    a = json.loads((killed / "metrics.json").read_text())
    b = json.loads((tiny_run / "metrics.json").read_text())
    assert a["macro_map"] == b["macro_map"] and a["ssim"] == b["ssim"]


def test_resume_refuses_changed_settings(monkeypatch, cli_args, tmp_path):
    with monkeypatch.context() as m:
        _with_hooks(m, _interrupt_after_epoch_1)
        assert main(cli_args(tmp_path / "run")) == 130
    assert main(["--resume", "--out", str(tmp_path / "run"), "--loss", "bce", "--device", "cpu", "--quiet"]) == 2


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(monkeypatch, cli_args, tmp_path, capsys):
    _with_hooks(monkeypatch, _poison_after_epoch_1)
    out = tmp_path / "run"
    assert main(cli_args(out)) == 1
    err = capsys.readouterr().err
    assert "fold 0 epoch 2: the training loss became nan" in err and "last good checkpoint" in err
    last = torch.load(out / "fold0/last.pt", weights_only=True)
    assert last["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["model"].values() if v.is_floating_point())
    assert (out / "fold0/best.pt").is_file() and not (out / "metrics.json").exists()


def test_resume_refuses_a_weights_file_whose_contents_changed(monkeypatch, cli_args, tmp_path, capsys):
    """The run records its weights file by sha256, not only by path: a backbone trained further under the same name
    (as the shipped one was) must not start the rest of a run or study started from the old one."""
    from torchvision.models import DenseNet

    from dualpath.model import BACKBONES

    spec = BACKBONES["densenet_tiny"]
    state = {k: v for k, v in DenseNet(spec.growth_rate, spec.block_config, spec.num_init_features).state_dict().items()
             if k.startswith("features.")}
    weights = tmp_path / "backbone.pth"
    torch.save(state, weights)
    args = cli_args(tmp_path / "run", "--pretrained", str(weights))
    with monkeypatch.context() as m:
        _with_hooks(m, _interrupt_after_epoch_1)
        assert main(args) == 130
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["weights"]
    assert saved["pretrained"] == str(weights) and len(saved["sha256"]) == 64
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, weights)  # same path, new weights
    capsys.readouterr()
    assert main(["--resume", "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "different setup" in err and "weights.sha256" in err and "Traceback" not in err
