from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dualpath.model import DenseNetBackbone, build_model


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 64, 64, generator=g)
    clean = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    labels = (torch.rand(4, 20, generator=g) < 0.2).float()
    return x, clean, labels


def _cls_loss(out, labels):
    return F.binary_cross_entropy_with_logits(out.logits, labels)


def _total_loss(out, clean, labels):
    recon = F.mse_loss(out.recon, clean) if out.recon is not None else 0.0
    return 1.5 * recon + 0.5 * _cls_loss(out, labels)


def _has_grad(params) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def _decoder_params(model):
    return list(model.decoder.parameters()) + list(model.reconstruction.parameters())


@pytest.mark.parametrize("options", [{}, {"stem": "3x3", "fusion_norm": True}], ids=["paper", "3x3+fusion_norm"])
def test_stop_gradient_keeps_the_classification_loss_out_of_the_decoder(tiny, options):
    torch.manual_seed(0)
    model = build_model(tiny(stop_gradient=True, **options)).train()
    x, _, labels = _batch()
    _cls_loss(model(x), labels).backward()
    assert not _has_grad(_decoder_params(model))
    # ...while it still trains the classifier path and, through z * z_c, the shared encoder
    assert _has_grad(model.classifier_backbone.parameters())
    assert _has_grad(model.encoder.parameters())


def test_without_stop_gradient_the_classification_loss_reaches_the_decoder(tiny):
    torch.manual_seed(0)
    model = build_model(tiny(stop_gradient=False)).train()
    x, _, labels = _batch()
    _cls_loss(model(x), labels).backward()
    assert _has_grad(model.decoder.parameters())
    assert _has_grad(model.reconstruction.parameters())


@pytest.mark.parametrize(
    "overrides",
    [{}, {"cbam": False}, {"fusion": "concat"}, {"fusion": "none"}, {"stop_gradient": False},
     {"stem": "3x3"}, {"fusion_norm": True}, {"stem": "3x3", "arch": "densenet"},
     {"arch": "cae"}, {"arch": "densenet"}],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "paper",
)
def test_every_trainable_parameter_learns_from_the_total_loss(tiny, overrides):
    torch.manual_seed(0)
    model = build_model(tiny(**overrides)).train()
    x, clean, labels = _batch()
    _total_loss(model(x), clean, labels).backward()
    starved = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert starved == []


def _backbone_params(model):
    return [(n, p, isinstance(m, torch.nn.BatchNorm2d))
            for b in model.modules() if isinstance(b, DenseNetBackbone)
            for m in b.modules() for n, p in m.named_parameters(recurse=False)]


@pytest.mark.parametrize("arch", ["dualpath", "densenet"])
def test_freezing_keeps_batchnorm_trainable_and_unfreezing_restores(tiny, arch):
    model = build_model(tiny(arch=arch))
    backbone_ids = {id(p) for _, p, _ in _backbone_params(model)}
    model.set_backbones_frozen(True)
    params = _backbone_params(model)
    assert {is_bn for _, _, is_bn in params} == {True, False}
    assert all(p.requires_grad == is_bn for _, p, is_bn in params)
    # the decoder and head are not backbone and stay trainable
    rest = [p for p in model.parameters() if id(p) not in backbone_ids]
    assert rest and all(p.requires_grad for p in rest)

    x, clean, labels = _batch()
    _total_loss(model.train()(x), clean, labels).backward()
    assert all(p.grad is None for _, p, is_bn in params if not is_bn)
    assert all(p.grad is not None for _, p, is_bn in params if is_bn)

    model.set_backbones_frozen(False)
    assert all(p.requires_grad for p in model.parameters())


def test_freezing_the_cae_baseline_changes_nothing(tiny):
    model = build_model(tiny(arch="cae"))
    model.set_backbones_frozen(True)
    assert all(p.requires_grad for p in model.parameters())
