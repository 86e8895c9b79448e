from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dualpath.model import ModelOutput
from train.losses import AsymmetricLoss, MultitaskLoss

LOGITS = [[2.0, -1.0, 0.5], [-3.0, 0.0, 1.5]]
TARGETS = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_asl_matches_the_formula_by_hand():
    # gamma+ 1, gamma- 2, margin 0.05: positives -(1-p)^1 log p; negatives -p_m^2 log(1-p_m), p_m = max(p-m, 0)
    m = 0.05

    def pos(v):
        return -(1 - _sig(v)) ** 1 * math.log(_sig(v))

    def neg(v):
        p_m = max(_sig(v) - m, 0)
        return -(p_m**2) * math.log(1 - p_m)

    by_hand = [[pos(2.0), neg(-1.0), neg(0.5)], [neg(-3.0), pos(0.0), pos(1.5)]]
    # sigmoid(-3) = 0.047 < m: that easy negative is discarded entirely
    assert by_hand[1][0] == 0.0
    # element (0, 1): p = 0.26894, p_m = 0.21894, 0.21894^2 * -log(0.78106) = 0.011845
    assert by_hand[0][1] == pytest.approx(0.011845, abs=1e-6)

    loss = AsymmetricLoss(gamma_neg=2, gamma_pos=1, clip=m, reduction="none")
    got = loss(torch.tensor(LOGITS), torch.tensor(TARGETS))
    assert torch.allclose(got, torch.tensor(by_hand), atol=1e-6)

    flat = [v for row in by_hand for v in row]
    x, y = torch.tensor(LOGITS), torch.tensor(TARGETS)
    assert AsymmetricLoss(2, 1, m, reduction="sum")(x, y).item() == pytest.approx(sum(flat), abs=1e-6)
    assert AsymmetricLoss(2, 1, m, reduction="mean")(x, y).item() == pytest.approx(sum(flat) / 6, abs=1e-6)


def test_asl_defaults_are_the_papers():
    loss = AsymmetricLoss()
    assert (loss.gamma_neg, loss.gamma_pos, loss.clip, loss.eps, loss.reduction) == (2, 0, 0.01, 1e-8, "mean")


def test_asl_without_focusing_or_margin_is_bce():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 20, generator=g) * 3
    targets = (torch.rand(8, 20, generator=g) < 0.2).float()
    asl = AsymmetricLoss(gamma_neg=0, gamma_pos=0, clip=0)(logits, targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    assert abs(asl.item() - bce.item()) < 1e-6


def test_focusing_weight_passes_no_gradient():
    x = torch.tensor(LOGITS, requires_grad=True)
    y = torch.tensor(TARGETS)
    AsymmetricLoss(gamma_neg=2, gamma_pos=1, clip=0.05)(x, y).backward()

    def manual(x, detach_weight: bool):
        p = torch.sigmoid(x)
        p_neg = (1 - p + 0.05).clamp(max=1)
        ce = y * torch.log(p) + (1 - y) * torch.log(p_neg)
        w = torch.pow(1 - (p * y + p_neg * (1 - y)), 1 * y + 2 * (1 - y))
        return -(ce * (w.detach() if detach_weight else w)).mean()

    x1 = x.detach().clone().requires_grad_()
    manual(x1, detach_weight=True).backward()
    x2 = x.detach().clone().requires_grad_()
    manual(x2, detach_weight=False).backward()
    assert torch.allclose(x.grad, x1.grad, atol=1e-7)
    assert not torch.allclose(x.grad, x2.grad, atol=1e-4)  # a weight with gradient would train differently


def test_asl_computes_in_float32_under_bf16():
    x = torch.tensor(LOGITS).bfloat16()
    y = torch.tensor(TARGETS)
    assert AsymmetricLoss()(x, y).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gamma_neg": -1}, "must be >= 0"),
        ({"gamma_pos": -0.5}, "must be >= 0"),
        ({"clip": 1.0}, r"clip .* must be in \[0, 1\)"),
        ({"clip": -0.01}, r"clip .* must be in \[0, 1\)"),
        ({"eps": 0}, r"eps must be in \(0, 1\)"),
        ({"reduction": "max"}, "reduction must be one of"),
    ],
)
def test_asl_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AsymmetricLoss(**kwargs)


def test_asl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must have one shape"):
        AsymmetricLoss()(torch.zeros(2, 20), torch.zeros(2, 19))


def _output(with_recon: bool):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(4, 20, generator=g, requires_grad=True)
    recon = torch.rand(4, 3, 64, 64, generator=g).mul(2).sub(1).requires_grad_() if with_recon else None
    return ModelOutput(logits, recon)


def test_multitask_is_weighted_mse_plus_classification():
    out = _output(with_recon=True)
    target = torch.zeros(4, 3, 64, 64)
    labels = (torch.arange(80).view(4, 20) % 7 == 0).float()
    total, parts = MultitaskLoss(cls_loss="asl")(out, target, labels)
    mse = F.mse_loss(out.recon, target)
    asl = AsymmetricLoss()(out.logits, labels)
    assert torch.allclose(total, 1.5 * mse + 0.5 * asl)
    assert torch.allclose(parts["recon"], mse) and torch.allclose(parts["cls"], asl)
    assert torch.equal(parts["total"], total.detach())
    assert not any(v.requires_grad for v in parts.values())
    total.backward()
    assert out.recon.grad is not None and out.logits.grad is not None


def test_multitask_bce_and_no_recon():
    out = _output(with_recon=False)
    labels = torch.zeros(4, 20)
    criterion = MultitaskLoss(cls_loss="bce", recon_weight=1.5, cls_weight=0.5)
    total, parts = criterion(out, torch.zeros(4, 3, 64, 64), labels)
    bce = F.binary_cross_entropy_with_logits(out.logits, labels)
    assert torch.allclose(total, 0.5 * bce)
    assert parts["recon"].item() == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cls_loss": "focal"}, "cls_loss must be one of"),
        ({"recon_weight": -1.0}, "must be >= 0"),
        ({"recon_weight": 0.0, "cls_weight": 0.0}, "not both 0"),
    ],
)
def test_multitask_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultitaskLoss(**kwargs)


def test_multitask_rejects_a_recon_target_of_another_shape():
    with pytest.raises(ValueError, match="must have one shape"):
        MultitaskLoss()(_output(with_recon=True), torch.zeros(4, 3, 32, 32), torch.zeros(4, 20))
