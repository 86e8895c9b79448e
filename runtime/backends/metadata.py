"""What a deployed model says about itself: labels, input size, normalisation, tensor names.

The exporter writes these as string key/value pairs into every artifact (ONNX metadata_props, OpenVINO rt_info
under "dualpath", the TensorRT engine's JSON sidecar), so serving needs nothing but the model file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from dualpath import contract

METADATA_FORMAT = "dualpath-model/1"
# Keys every artifact must carry; values are JSON text.
REQUIRED_KEYS = ("format", "class_names", "image_size", "mean", "std", "input_name", "output_names")


class MetadataError(ValueError):
    """An artifact whose embedded metadata is missing or inconsistent."""


@dataclass(frozen=True)
class ModelMetadata:
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_name: str = contract.INPUT_NAME
    output_names: tuple[str, ...] = contract.OUTPUT_NAMES
    extra: dict[str, Any] = field(default_factory=dict)  # outputs' meanings, training metrics, hashes, versions

    def __post_init__(self) -> None:
        if not self.class_names:
            raise MetadataError("class_names is empty")
        if self.image_size < 1:
            raise MetadataError(f"image_size must be positive, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise MetadataError(f"mean and std need 3 values each (std > 0), got {self.mean} / {self.std}")

    @classmethod
    def from_contract(cls, **extra: Any) -> "ModelMetadata":
        return cls(contract.CLASS_NAMES, contract.IMAGE_SIZE, contract.MEAN, contract.STD, extra=dict(extra))

    def to_props(self) -> dict[str, str]:
        """Flat string pairs, as ONNX metadata_props and OpenVINO rt_info hold them."""
        props = {
            "format": METADATA_FORMAT,
            "class_names": json.dumps(list(self.class_names)),
            "image_size": json.dumps(self.image_size),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "input_name": json.dumps(self.input_name),
            "output_names": json.dumps(list(self.output_names)),
        }
        props.update({k: json.dumps(v) for k, v in self.extra.items()})
        return props

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "the model") -> "ModelMetadata":
        missing = [k for k in REQUIRED_KEYS if k not in props]
        if missing:
            raise MetadataError(
                f"{source} carries no dualpath metadata ({', '.join(missing)} missing): export it with "
                "`python -m export`, which embeds labels, input size and normalisation"
            )
        if props["format"] != METADATA_FORMAT:
            raise MetadataError(f"{source} has metadata format {props['format']!r}; this runtime reads {METADATA_FORMAT!r}")
        try:
            values = {k: json.loads(v) for k, v in props.items() if k != "format"}
        except json.JSONDecodeError as e:
            raise MetadataError(f"{source} has corrupt metadata ({e}); export it again") from None
        extra = {k: v for k, v in values.items() if k not in REQUIRED_KEYS}
        _check_types(values, source)
        return cls(
            class_names=tuple(values["class_names"]),
            image_size=int(values["image_size"]),
            mean=tuple(float(v) for v in values["mean"]),
            std=tuple(float(v) for v in values["std"]),
            input_name=str(values["input_name"]),
            output_names=tuple(values["output_names"]),
            extra=extra,
        )


def _is_number(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# field -> (what it must be, the check): every value read from a model file is checked before it is used
_SCHEMA = {
    "class_names": ("a list of names (strings)", lambda v: isinstance(v, list) and all(isinstance(n, str) and n for n in v)),
    "image_size": ("a whole number of pixels > 0", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0),
    "mean": ("a list of 3 finite numbers", lambda v: isinstance(v, list) and len(v) == 3 and all(map(_is_number, v))),
    "std": ("a list of 3 finite numbers > 0",
            lambda v: isinstance(v, list) and len(v) == 3 and all(_is_number(x) and x > 0 for x in v)),
    "input_name": ("a tensor name (a string)", lambda v: isinstance(v, str) and bool(v)),
    "output_names": ("a list of tensor names (strings)",
                     lambda v: isinstance(v, list) and bool(v) and all(isinstance(n, str) for n in v)),
}


def _check_types(values: Mapping[str, Any], source: str) -> None:
    for key, (what, ok) in _SCHEMA.items():
        if not ok(values[key]):
            raise MetadataError(f"{source}: its dualpath metadata field {key} must be {what}, got "
                                f"{json.dumps(values[key])[:80]}; export the model again with `python -m export`")
