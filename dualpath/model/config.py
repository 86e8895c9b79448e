"""Model configuration: which architecture, which DenseNet size, which weights, which ablations."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dualpath.architectures import ARCHITECTURES
from dualpath.configio import known_fields
from dualpath.contract import NUM_CLASSES

FUSIONS = ("multiply", "concat", "none")
# DenseNet stems. "imagenet": torchvision's 7x7 stride-2 conv + 3x3 stride-2 max-pool, the paper's: a 64x64 input
# reaches the first dense block at 16x16 and most dense layers work at 4x4 and 2x2. "3x3": a 3x3 stride-2 conv and no
# max-pool, so the first dense block works at 32x32 and the bottleneck is 4x4 (measured in benchmarks/recipe.py).
STEMS = ("imagenet", "3x3")
# Named weight sources; any other string is a path to a local torchvision state dict.
PRETRAINED_KEYWORDS = ("imagenet", "none")


@dataclass(frozen=True)
class BackboneSpec:
    """Arguments of torchvision's DenseNet class; the smaller sizes keep its layout (and state-dict keys)."""

    growth_rate: int
    block_config: tuple[int, int, int, int]
    num_init_features: int
    bn_size: int = 4


BACKBONES: dict[str, BackboneSpec] = {
    # The paper's encoder and classifier backbone (torchvision densenet121, ImageNet weights available).
    "densenet121": BackboneSpec(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64),
    # CPU-sized (the `cpu` preset's): half the growth rate and a third of the layers, so a dual-path training run
    # fits minutes on a 2-core CPU; its speed and the larger blocks tried are in docs/measurements.md.
    "densenet_small": BackboneSpec(growth_rate=16, block_config=(2, 4, 8, 6), num_init_features=32),
    # Deeper, the same growth rate (blocks of torchvision's DenseNet-121 halved): a candidate for a better scene-
    # pretrained backbone; no shipped weights. Its dual-path training step ran ~20% slower than densenet_small's
    # (docs/measurements.md); pretraining side by side with it: docs/results.md (issue 20).
    "densenet_medium": BackboneSpec(growth_rate=16, block_config=(3, 6, 12, 8), num_init_features=32),
    # Test-sized: one layer per block, milliseconds per forward.
    "densenet_tiny": BackboneSpec(growth_rate=8, block_config=(1, 1, 1, 1), num_init_features=16),
}


@dataclass
class ModelConfig:
    arch: str = "dualpath"  # a key of dualpath.architectures.ARCHITECTURES: "dualpath" (the paper) or a baseline
    backbone: str = "densenet121"  # a key of BACKBONES; also sets the CAE baseline's widths
    pretrained: str = "none"  # "imagenet" (torchvision download) | "none" | path to a torchvision state dict
    cbam: bool = True  # ablation: CBAM after the last decoder block
    stop_gradient: bool = True  # ablation: the classifier sees recon.detach(), so L_cls never reaches the decoder
    fusion: str = "multiply"  # ablation: z * z_c (paper Eq. 7) | concat [z; z_c] | "none" (z_c only)
    stem: str = "imagenet"  # one of STEMS, for every DenseNet of the model
    fusion_norm: bool = False  # BatchNorm1d on the fused vector before the head (fixes the scale of z * z_c)
    hidden: int = 512  # width of the classifier's hidden FC layer
    dropout: float = 0.3  # dropout after the hidden FC layer
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        if isinstance(self.pretrained, Path):
            self.pretrained = str(self.pretrained)
        _check_choice("arch", self.arch, tuple(ARCHITECTURES))
        _check_choice("backbone", self.backbone, tuple(BACKBONES))
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("stem", self.stem, STEMS)
        if self.stem != "imagenet" and self.pretrained == "imagenet":
            raise ValueError(f"ImageNet weights need the 'imagenet' stem, not {self.stem!r}")
        if not isinstance(self.pretrained, str) or not self.pretrained:
            raise ValueError(f"pretrained must be 'imagenet', 'none' or a file path, got {self.pretrained!r}")
        if self.pretrained == "imagenet" and self.backbone != "densenet121":
            raise ValueError(
                f"ImageNet weights exist only for backbone 'densenet121', not {self.backbone!r}; "
                "use pretrained='none' with the smaller backbones"
            )
        if not ARCHITECTURES[self.arch].backbones and self.pretrained != "none":
            raise ValueError(f"the {self.arch!r} model has no pretrained backbone (no DenseNet); use pretrained='none'")
        for name in ("hidden", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def backbone_spec(self) -> BackboneSpec:
        return BACKBONES[self.backbone]

    @property
    def uses_pretrained(self) -> bool:
        return self.pretrained != "none"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return cls(**known_fields(cls, data))


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
