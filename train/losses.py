"""Training losses (paper III.D): Asymmetric Loss for multi-label classification and the multitask sum."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from dualpath.model import ModelOutput

REDUCTIONS = ("mean", "sum", "none")
CLS_LOSSES = ("asl", "bce")


class AsymmetricLoss(nn.Module):
    """Asymmetric Loss on logits, as Ridnik et al. 2021 (github.com/Alibaba-MIIL/ASL, AsymmetricLoss).

    p = sigmoid(logits). Positives: -(1 - p)^gamma_pos * log(p). Negatives: -p_m^gamma_neg * log(1 - p_m)
    with the probability margin p_m = max(p - clip, 0), i.e. the reference's 1 - p shifted up by `clip`
    and capped at 1. The focusing weight is a constant for the gradient (the reference's
    disable_torch_grad_focal_loss=True). "mean" averages over batch x classes, so gammas 0 and clip 0
    give exactly binary_cross_entropy_with_logits(reduction="mean") (up to the eps clamp).
    """

    def __init__(
        self,
        gamma_neg: float = 2.0,
        gamma_pos: float = 0.0,
        clip: float = 0.01,
        eps: float = 1e-8,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if gamma_neg < 0 or gamma_pos < 0:
            raise ValueError(f"gamma_neg and gamma_pos must be >= 0, got {gamma_neg} and {gamma_pos}")
        if not 0.0 <= clip < 1.0:
            raise ValueError(f"clip (the probability margin m) must be in [0, 1), got {clip}")
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {eps}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.eps = float(eps)
        self.reduction = reduction

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        if logits.shape != targets.shape:
            raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} must have one shape")
        # float32 on purpose: under bf16 autocast, 1 - p and log(eps) lose the small values ASL is about.
        logits, targets = logits.float(), targets.float()
        p = torch.sigmoid(logits)
        p_neg = 1.0 - p  # probability of "absent"
        if self.clip > 0:
            p_neg = (p_neg + self.clip).clamp(max=1.0)  # = 1 - max(p - m, 0)
        loss = targets * torch.log(p.clamp(min=self.eps)) + (1.0 - targets) * torch.log(p_neg.clamp(min=self.eps))
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            loss = loss * self._focusing_weight(p, p_neg, targets)
        return _reduce(-loss, self.reduction)

    def _focusing_weight(self, p: Tensor, p_neg: Tensor, targets: Tensor) -> Tensor:
        # The reference computes it without gradient: the weight scales the loss but is not optimised.
        with torch.no_grad():
            pt = p * targets + p_neg * (1.0 - targets)  # probability of the true state
            gamma = self.gamma_pos * targets + self.gamma_neg * (1.0 - targets)
            return torch.pow(1.0 - pt, gamma)

    def extra_repr(self) -> str:
        return (
            f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, eps={self.eps}, "
            f"reduction={self.reduction!r}"
        )


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class MultitaskLoss(nn.Module):
    """L_total = recon_weight * MSE(recon, clean) + cls_weight * L_cls (paper Eq. 9, 1.5 and 0.5).

    Without a reconstruction (the DenseNet-only baseline) the recon term is 0 and only L_cls counts.
    Returns (total, parts) with parts = {"recon", "cls", "total"} detached, for logging.
    """

    def __init__(self, cls_loss: str = "asl", recon_weight: float = 1.5, cls_weight: float = 0.5) -> None:
        super().__init__()
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"cls_loss must be one of {CLS_LOSSES}, got {cls_loss!r}")
        if recon_weight < 0 or cls_weight < 0 or recon_weight + cls_weight == 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0, got recon {recon_weight} and cls {cls_weight}"
            )
        self.cls_loss = cls_loss
        self.recon_weight = float(recon_weight)
        self.cls_weight = float(cls_weight)
        # ASL with the paper's settings (gamma- 2, gamma+ 0, m 0.01, eps 1e-8).
        self.classification = AsymmetricLoss() if cls_loss == "asl" else _BCEWithLogits()

    def forward(self, out: ModelOutput, target_recon: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cls = self.classification(out.logits, labels)
        total = self.cls_weight * cls
        if out.recon is None:
            recon = torch.zeros((), device=cls.device)
        else:
            if out.recon.shape != target_recon.shape:
                raise ValueError(
                    f"recon {tuple(out.recon.shape)} and target {tuple(target_recon.shape)} must have one shape"
                )
            recon = F.mse_loss(out.recon.float(), target_recon.float())
            total = total + self.recon_weight * recon
        parts = {"recon": recon.detach(), "cls": cls.detach(), "total": total.detach()}
        return total, parts


class _BCEWithLogits(nn.Module):
    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), targets.float())
