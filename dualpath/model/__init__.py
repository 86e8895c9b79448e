"""The dual-path autoencoder and its baselines (torch). Start with build_model(ModelConfig(...)).

The names below are imported when first used (PEP 562), so that `dualpath.model.config` (backbone names and specs,
ModelConfig: no torch) can be read by command lines' --help without importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DenseNetBackbone": "dualpath.model.backbone",
    "Model": "dualpath.model.base",
    "ModelOutput": "dualpath.model.base",
    "ARCHITECTURES": "dualpath.architectures",
    "build_model": "dualpath.model.build",
    "model_class": "dualpath.model.build",
    "BACKBONES": "dualpath.model.config",
    "BackboneSpec": "dualpath.model.config",
    "ModelConfig": "dualpath.model.config",
    "PretrainedWeightsUnavailable": "dualpath.model.weights",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
