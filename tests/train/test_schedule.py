"""The one cosine schedule (train.loop.cosine_lr) behind both trainers gives the numbers each had before it was shared."""
from __future__ import annotations

import math

import pytest

from train import pretrain
from train.config import PRESETS, TrainConfig
from train.loop import cosine_lr, lr_at, plan_phases


def _pretrain_before(cfg, scenes_seen, elapsed_s):  # train/pretrain.py's own formula before issue 22
    frac = scenes_seen / (cfg.max_chunks * cfg.chunk) if cfg.scenes is not None else elapsed_s / (60 * cfg.budget_minutes)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def _loop_before(cfg, phase, epoch, step, steps_per_epoch):  # train/loop.py's lr_at before issue 22
    if cfg.lr_schedule == "constant":
        return phase.lr
    total = (phase.last_epoch - phase.first_epoch + 1) * steps_per_epoch
    s = (epoch - phase.first_epoch) * steps_per_epoch + step
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    if s < warmup:
        return phase.lr * (s + 1) / (warmup + 1)
    frac = (s - warmup) / max(total - 1 - warmup, 1)
    floor = cfg.min_lr_fraction
    return phase.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def test_cosine_runs_from_base_to_its_floor_and_stays():
    assert cosine_lr(2.0, 0.0, 0.05) == 2.0
    assert cosine_lr(2.0, 0.5, 0.05) == pytest.approx(1.05)
    assert cosine_lr(2.0, 1.0, 0.05) == cosine_lr(2.0, 7.0, 0.05) == pytest.approx(0.1)


@pytest.mark.parametrize("sizing", [dict(scenes=100, chunk=50, lr=1.0), dict(scenes=7, chunk=3, lr=0.1),
                                    dict(budget_minutes=1.0, lr=1.0), dict(budget_minutes=225.0, lr=1e-3)])
def test_pretraining_learning_rates_are_exactly_the_old_ones(sizing):
    cfg = pretrain.PretrainConfig(**sizing)
    points = [(s, t) for s in (0, 1, 3, 50, 99, 100, 150, 10**6) for t in (0.0, 1.5, 30.0, 59.9, 60.0, 1e4, 1e9)]
    assert [pretrain.lr_at(cfg, s, t) for s, t in points] == [_pretrain_before(cfg, s, t) for s, t in points]


@pytest.mark.parametrize("cfg", [*PRESETS.values(), TrainConfig(lr_schedule="cosine", warmup_epochs=1.5,
                                                                  min_lr_fraction=0.1, epochs=7, phase1_epochs=2)])
def test_training_learning_rates_are_exactly_the_old_ones(cfg):
    for loaded in (True, False):
        for phase in plan_phases(cfg, loaded):
            for spe in (1, 10, 37):
                points = [(e, s) for e in range(phase.first_epoch, phase.last_epoch + 2) for s in range(spe + 1)]
                assert [lr_at(cfg, phase, e, s, spe) for e, s in points] == [
                    _loop_before(cfg, phase, e, s, spe) for e, s in points]


@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_phase_2_can_give_the_backbones_a_fraction_of_the_rate(scale):
    """--backbone-lr-scale: every trainable parameter in exactly one group; pretrained backbones' at scale x the phase's
    rate at every step (set_lr), the decoder, fusion and head at the rate; phase 1 (frozen backbones) and backbones
    from random init one group."""
    import torch

    from dualpath.model import ModelConfig, build_model
    from train.loop import Phase, param_groups, set_lr

    model = build_model(ModelConfig(backbone="densenet_tiny"), load_pretrained=False)
    model.set_backbones_frozen(False)
    assert len(param_groups(model, Phase(2, 1, 4, 2e-3), 0.25)) == 1  # random init: nothing to keep, one rate
    model.pretrained_loaded = True  # as build_model marks loaded weights
    backbone_ids = {id(p) for b in model.backbones() for p in b.parameters()}
    assert backbone_ids and len(backbone_ids) < len(list(model.parameters()))
    phase2 = Phase(2, 2, 4, 2e-3)
    model.set_backbones_frozen(False)
    optimizer = torch.optim.Adam(param_groups(model, phase2, scale), lr=phase2.lr)
    grouped = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each once
    for lr in (2e-3, 1e-4):
        set_lr(optimizer, lr)
        for g in optimizer.param_groups:
            in_backbone = {id(p) in backbone_ids for p in g["params"]}
            assert len(in_backbone) == (2 if scale == 1.0 else 1)  # one rate: one group
            assert g["lr"] == pytest.approx(lr * (scale if in_backbone == {True} else 1.0))
    assert len(optimizer.param_groups) == (1 if scale == 1.0 else 2)
    model.set_backbones_frozen(True)
    assert len(param_groups(model, Phase(1, 1, 1, 1e-3), scale)) == 1


def test_the_backbone_rate_scale_is_checked():
    with pytest.raises(ValueError, match="backbone_lr_scale must be in"):
        TrainConfig(backbone_lr_scale=0.0)
    with pytest.raises(ValueError, match="backbone_lr_scale must be in"):
        TrainConfig(backbone_lr_scale=1.5)
