"""Stage configs (SceneConfig, ModelConfig, TrainConfig) travel as JSON in manifests and checkpoints."""
from __future__ import annotations

import dataclasses
from typing import Any


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """`data` unchanged, once every key is a field of the dataclass `cls`; else an error naming the known ones."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys: {sorted(known)}")
    return data
