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
    check_schema(path, ckpt)
    return ckpt


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained model (eval mode, no pretrained download) and its checkpoint dict."""
    from dualpath.model import ModelConfig, build_model

    ckpt = load_checkpoint(path)
    model = build_model(ModelConfig.from_dict(ckpt["model_config"]), load_pretrained=False)  # weights: the file
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:  # keys or shapes that are not this model_config's
        first = str(err).strip().splitlines()
        raise ValueError(f"{path}: model does not fit its own model_config ({' '.join(first[:2])[:200]}); "
                         f"{_NOT_USABLE}") from None
    return model.to(device).eval(), ckpt


# --- the checkpoint's schema: every field a reader uses, with its type -------------------------------------------

_NOT_USABLE = "it is not a usable dualpath checkpoint (torn, edited or foreign): use the run's own file or train again"


class CheckpointError(ValueError):
    """A checkpoint field that is missing or of the wrong type; str() is one line naming the file and the field."""


def _bad(path: Path, field: str, value: Any, wanted: str, fix: str = _NOT_USABLE) -> CheckpointError:
    shown = "missing" if value is _MISSING else f"{type(value).__name__} {_short(value)}"
    return CheckpointError(f"{path}: field {field} is {shown}, {wanted} belongs there; {fix}")


_MISSING = object()


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, torch.Tensor) else f"tensor{list(value.shape)}"
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind_of(default: Any) -> tuple[str, Any] | None:
    """(name, test) for a dataclass field's default value; None: any value."""
    if isinstance(default, bool):
        return "a boolean", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", _integer
    if isinstance(default, float):
        return "a number", _number
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, dict):
        return "an object", lambda v: isinstance(v, dict)
    if isinstance(default, (tuple, list)):
        return "a list", lambda v: isinstance(v, (tuple, list))
    return None


def check_fields(path: Path, cls: type, data: dict[str, Any], prefix: str, fix: str = _NOT_USABLE) -> None:
    """Every field of dataclass `cls` present in `data` has its default's type (numbers may be ints); unknown keys
    are refused. Missing fields take their defaults, as from_dict does."""
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in data.items():
        if key not in fields:
            raise CheckpointError(f"{path}: field {prefix}.{key} is not a {cls.__name__} field; {fix}")
        f = fields[key]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kind = _kind_of(default)
        if kind is not None and not kind[1](value):
            raise _bad(path, f"{prefix}.{key}", value, kind[0], fix)


def check_schema(path: Path, ckpt: dict[str, Any]) -> None:
    """A training checkpoint (make_checkpoint's dict) against its schema: CheckpointError naming the first field
    that is missing or of the wrong type, before any reader (export, resume, evaluation) trips over it."""
    from dualpath.model import ModelConfig
    from train.config import TrainConfig

    def get(key: str) -> Any:
        return ckpt.get(key, _MISSING)

    model = get("model")
    if not isinstance(model, dict) or not model:
        raise _bad(path, "model", model, "a state dict (parameter name -> tensor)")
    for key, value in model.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise _bad(path, f"model[{key!r}]", value, "a tensor")
    model_config = get("model_config")
    if not isinstance(model_config, dict):
        raise _bad(path, "model_config", model_config, "an object (ModelConfig.to_dict())")
    check_fields(path, ModelConfig, model_config, "model_config")
    try:
        ModelConfig.from_dict(model_config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: field model_config is not a valid ModelConfig ({err}); {_NOT_USABLE}") from None
    names = get("class_names")
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise _bad(path, "class_names", names, "a list of class names")
    pre = get("preprocessing")
    if not isinstance(pre, dict):
        raise _bad(path, "preprocessing", pre, "an object (size, mean, std)")
    if not _integer(pre.get("size", _MISSING)):
        raise _bad(path, "preprocessing.size", pre.get("size", _MISSING), "an integer")
    for key in ("mean", "std"):
        value = pre.get(key, _MISSING)
        if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(_number(v) for v in value):
            raise _bad(path, f"preprocessing.{key}", value, "a list of 3 numbers")
    train_config = get("train_config")
    if not isinstance(train_config, dict):
        raise _bad(path, "train_config", train_config, "an object (TrainConfig.to_dict())")
    check_fields(path, TrainConfig, train_config, "train_config")
    epoch = get("epoch")
    if not _integer(epoch) or epoch < 0:
        raise _bad(path, "epoch", epoch, "an integer >= 0")
    phase = get("phase")
    if not _integer(phase) or phase not in (1, 2):
        raise _bad(path, "phase", phase, "1 or 2")
    metrics = get("metrics")
    if not isinstance(metrics, dict):
        raise _bad(path, "metrics", metrics, "an object (metric name -> value)")
    for key in ("optimizer", "state"):
        value = get(key)
        if value is not None and not isinstance(value, dict):
            raise _bad(path, key, value, "an object")


def check_resumable(path: Path, ckpt: dict[str, Any], train_config: dict[str, Any]) -> None:
    """A fold's last.pt that --resume continues: its loop state is whole, and it was written by this run (its own
    training config is `train_config`); CheckpointError naming the field or the differing settings otherwise."""
    import json

    from train.config import saved_defaults

    fix = "remove the fold's last.pt to train that fold again, or resume with the run's own files"
    defaults = saved_defaults()  # a field added since the checkpoint was written had its default then
    saved = {**defaults, **json.loads(json.dumps(ckpt["train_config"]))}
    now = {**defaults, **json.loads(json.dumps(train_config))}
    differing = [f"{k} {saved.get(k, '(none)')!r} in the checkpoint, {now.get(k, '(none)')!r} in this run"
                 for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
    if differing:
        raise CheckpointError(f"--resume: {path} is a checkpoint of another run ({'; '.join(differing)}); it cannot "
                              f"continue this one: {fix}")
    state = ckpt.get("state")
    if not isinstance(state, dict):
        raise _bad(path, "state", state, "the training loop's state (an object)", fix)
    rng = state.get("rng_cpu", _MISSING)
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        raise _bad(path, "state.rng_cpu", rng, "a uint8 tensor (torch.get_rng_state())", fix)
    checks = {"history": ("a list", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)),
              "best_epoch": ("an integer", _integer),
              "best_value": ("a number or null", lambda v: v is None or _number(v)),
              "pretrained_loaded": ("a boolean", lambda v: isinstance(v, bool))}
    for key, (wanted, test) in checks.items():
        value = state.get(key, _MISSING)
        if not test(value):
            raise _bad(path, f"state.{key}", value, wanted, fix)
    if ckpt.get("optimizer") is not None and not isinstance(ckpt["optimizer"].get("state"), dict):
        raise _bad(path, "optimizer.state", ckpt["optimizer"].get("state", _MISSING), "an object", fix)
