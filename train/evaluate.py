"""Predictions of a model on a split (on the device, one host copy at the end) and their metrics."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dualpath import contract, metrics
from train.data import DeviceData, Normalizer, eval_batches

LOSS_PARTS = ("total", "recon", "cls")


@dataclass(frozen=True)
class Predictions:
    indices: np.ndarray  # scene indices the rows belong to
    probs: np.ndarray  # float32 (n, C) sigmoid probabilities
    recon: np.ndarray | None  # float32 (n, 3, H, W) in [-1, 1]; None for a classifier-only model
    losses: dict[str, float]  # mean "total", "recon", "cls" of the training criterion


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def predict(
    model: nn.Module,
    criterion: nn.Module,
    data: DeviceData,
    indices: np.ndarray,
    *,
    normalizer: Normalizer,
    batch_size: int,
    amp: bool = False,
    keep_recon: bool = True,
) -> Predictions:
    was_training = model.training
    model.eval()
    idx_all = torch.as_tensor(indices, dtype=torch.long, device=data.device)
    probs, recons = [], []
    sums = torch.zeros(3, device=data.device)
    for idx in eval_batches(idx_all, batch_size):
        x, target = normalizer.inputs(data.noisy[idx]), normalizer.targets(data.clean[idx])
        with autocast(data.device, amp):
            out = model(x)
            _, parts = criterion(out, target, data.labels[idx].float())
        sums += loss_parts(parts, data.device) * len(idx)  # the criterion averages per batch; weight by size
        probs.append(torch.sigmoid(out.logits.float()))
        if keep_recon and out.recon is not None:
            recons.append(out.recon.float())
    model.train(was_training)
    return Predictions(
        indices=np.asarray(indices),
        probs=torch.cat(probs).cpu().numpy(),
        recon=torch.cat(recons).cpu().numpy() if recons else None,
        losses=dict(zip(LOSS_PARTS, (sums / max(1, len(indices))).tolist())),
    )


def loss_parts(parts: dict, device: torch.device) -> torch.Tensor:
    """The criterion's detached parts as one float32 vector in LOSS_PARTS order (stays on the device)."""
    return torch.stack([torch.as_tensor(parts[k], device=device).float() for k in LOSS_PARTS])


def compute_metrics(pred: Predictions, labels: np.ndarray, clean: np.ndarray) -> dict:
    """metrics.json values for one split: classification from the probabilities, SSIM / PSNR from the recon."""
    y = labels[pred.indices]
    out = metrics.multilabel_metrics(y, pred.probs, class_names=contract.CLASS_NAMES)
    if pred.recon is not None:
        target = clean[pred.indices].astype(np.float32) / 255.0
        out.update(metrics.image_metrics(contract.recon_to_unit(pred.recon), target))
    else:
        out.update(dict.fromkeys(metrics.IMAGE_KEYS))  # the classifier-only baseline has no reconstruction (Table III)
    return {k: _plain(v) for k, v in out.items()}


def is_better(value: float | None, best: float | None, mode: str) -> bool:
    """NaN / None never wins; anything beats no best yet."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _plain(value):
    """JSON- and weights_only-safe python values; NaN becomes None (JSON has no NaN)."""
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
