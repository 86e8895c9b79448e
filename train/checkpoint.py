"""Checkpoints: plain dicts of tensors and python values, written atomically, read with weights_only=True.

A checkpoint carries what export and serving need without this package's code: the weights, the model config
(ModelConfig.to_dict()), the label names, the preprocessing, the training config and the validation metrics.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dualpath import contract
from dualpath.files import atomic_path, interrupts_deferred

FORMAT_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def preprocessing() -> dict[str, Any]:
    return {
        "size": contract.IMAGE_SIZE,
        "mean": list(contract.MEAN),
        "std": list(contract.STD),
        "input": "RGB uint8 / 255, then (x - mean) / std per channel, float32 NCHW",
        "recon": "tanh output in [-1, 1], RGB NCHW; (recon + 1) / 2 gives [0, 1]",
    }


def make_checkpoint(
    model: nn.Module,
    *,
    train_config: dict[str, Any],
    epoch: int,
    phase: int,
    metrics: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`state` holds the loop's own resumable values (best so far, history, RNG state)."""
    plain = unwrap(model)
    return {
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
        "model_config": plain.config.to_dict(),
        "class_names": list(contract.CLASS_NAMES),
        "preprocessing": preprocessing(),
        "train_config": train_config,
        "epoch": epoch,
        "phase": phase,
        "metrics": metrics,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "state": state or {},
    }


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: a kill mid-write never leaves a torn checkpoint, and
    Ctrl-C / SIGTERM take effect once the file is whole. A full disk raises OutputError("no space left on <path>"),
    not torch's "unexpected pos"."""
    with interrupts_deferred(), atomic_path(path) as tmp, open(tmp, "wb") as f:
        writer = _Writer(f)
        try:
            torch.save(checkpoint, writer)
        except RuntimeError:
            if writer.error is not None:  # torch's zip writer turns the OSError into "[enforce fail ...]"
                raise writer.error from None
            raise
        f.flush()
        os.fsync(f.fileno())


class _Writer(io.RawIOBase):
    """A file torch.save writes through, keeping the OSError (ENOSPC ...) that torch would replace by its own."""

    def __init__(self, f) -> None:
        super().__init__()
        self._f, self.error = f, None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as err:
            self.error = err
            raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for torn or foreign files
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a dualpath training checkpoint (format {FORMAT_VERSION})")
    return ckpt


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, no pretrained download) and its checkpoint dict."""
    from dualpath.model import ModelConfig, build_model

    ckpt = load_checkpoint(path)
    model = build_model(ModelConfig.from_dict(ckpt["model_config"]), load_pretrained=False)  # weights: the file
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
