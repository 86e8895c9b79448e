"""TrainConfig (what is trained: saved in every run folder and checkpoint) and RunOptions (how it runs here).

Presets are instances: `PRESETS["paper" | "cpu" | "tiny"]`, changed with `dataclasses.replace` or `with_overrides`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dualpath.architectures import ARCHITECTURES
from dualpath.configio import known_fields
from dualpath.seeds import TRAINING_SEEDS_END  # extra training scenes stay below every other set's seeds

LOSSES = ("asl", "bce")
SELECT_MODES = ("max", "min")
LR_SCHEDULES = ("constant", "cosine")
DEVICES = ("auto", "cpu", "cuda")
AUGMENTS = ("none", "flips", "dihedral")  # train.data.augment_pairs


@dataclass(frozen=True)
class TrainConfig:
    # model (turned into a dualpath.model.ModelConfig by `model_config`)
    arch: str = "dualpath"  # a key of dualpath.architectures.ARCHITECTURES: "dualpath" (the paper) or a baseline
    backbone: str = "densenet121"  # DenseNet size of dualpath.model.BACKBONES; the paper's is densenet121
    pretrained: str = "imagenet"  # "imagenet" | "none" | path of a local torchvision DenseNet state dict
    model_options: dict[str, Any] = field(default_factory=dict)  # further ModelConfig fields (ablations: cbam, fusion)
    # loss (paper eq. 9): recon_weight * MSE + cls_weight * (ASL | BCE)
    loss: str = "asl"
    recon_weight: float = 1.5
    cls_weight: float = 0.5
    # schedule (paper IV.B, pseudocode 1): phase 1 epochs 1..phase1_epochs with the pretrained backbones frozen
    # (BatchNorm still trains), then phase 2 with everything trainable up to `epochs` in total.
    epochs: int = 100
    phase1_epochs: int = 30
    phase1_lr: float = 1e-3
    phase2_lr: float = 1e-4
    # Phase 2's rate for the pretrained DenseNet backbones, as a fraction of phase2_lr (the decoder, fusion and head
    # keep phase2_lr): 1 is the paper's one rate for everything.
    backbone_lr_scale: float = 1.0
    # Freezing random backbones only wastes epochs, so without loaded weights phase 1 is skipped (the log says so)
    # and phase 2 runs all `epochs`; set True to freeze anyway.
    phase1_without_pretrained: bool = False
    # Learning rate within each phase: "constant" (the paper's pseudocode) or "cosine" (linear warm-up over
    # `warmup_epochs`, then cosine decay to `min_lr_fraction` of the phase's lr at its last step). Short from-scratch
    # runs (the cpu preset) learn much more per epoch with the decay; the paper's preset keeps constant rates.
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    min_lr_fraction: float = 0.0
    weight_decay: float = 0.0  # Adam's L2 term; the paper uses plain Adam
    batch_size: int = 32  # global batch (split over DDP processes)
    eval_batch_size: int = 256
    # model selection: the checkpoint with the best validation value of this metrics.json key
    select_metric: str = "macro_map"
    select_mode: str = "max"
    # data and splits (paper IV.A: 6000 scenes, 80:20 stratified; 5-fold CV on the 80)
    n_scenes: int = 6000
    data_seed: int = 0  # seed of the generated scenes (dualpath.scenes.generate_dataset)
    test_fraction: float = 0.2
    folds: int = 5  # K-fold CV on the development part; 1 = a single stratified validation split of val_fraction
    val_fraction: float = 0.2  # used only with folds=1 (1/5 of the development part, as one fold of 5 would be)
    seed: int = 0  # splits, initialisation, shuffling, dropout
    # Label-preserving geometric augmentation of each training batch (input and target alike): "flips" (left-right,
    # up-down) or "dihedral" (also transposes: all 8 orientations). A utensil's class does not depend on its angle.
    augment: str = "none"
    # More training scenes than the split's: `extra_scenes` generated on `extra_seed` (another seed of the same
    # generator, so none of them is a validation or test scene) are added to every fold's training part.
    extra_scenes: int = 0
    extra_seed: int = 1

    def __post_init__(self) -> None:
        _choice("arch", self.arch, tuple(ARCHITECTURES))
        _choice("augment", self.augment, AUGMENTS)
        if isinstance(self.extra_scenes, bool) or not isinstance(self.extra_scenes, int) or self.extra_scenes < 0:
            raise ValueError(f"extra_scenes must be an integer >= 0, got {self.extra_scenes!r}")
        if self.extra_scenes and (self.extra_seed == self.data_seed or not 0 <= self.extra_seed < TRAINING_SEEDS_END):
            raise ValueError(
                f"extra_seed must differ from data_seed ({self.data_seed}) and lie in [0, {TRAINING_SEEDS_END}) (the "
                f"training seeds; calibration and drift sets use the seeds above), got {self.extra_seed!r}"
            )
        _choice("loss", self.loss, LOSSES)
        _choice("select_mode", self.select_mode, SELECT_MODES)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        if not self.warmup_epochs >= 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise ValueError(f"min_lr_fraction must be in [0, 1], got {self.min_lr_fraction!r}")
        if isinstance(self.pretrained, Path):
            object.__setattr__(self, "pretrained", str(self.pretrained))
        for name in ("epochs", "batch_size", "eval_batch_size", "n_scenes", "folds"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.phase1_epochs, int) or not 0 <= self.phase1_epochs <= self.epochs:
            raise ValueError(
                f"phase1_epochs must be an integer in [0, epochs={self.epochs}], got {self.phase1_epochs!r}; "
                "lower it or raise --epochs"
            )
        for name in ("phase1_lr", "phase2_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.backbone_lr_scale <= 1.0:
            raise ValueError(f"backbone_lr_scale must be in (0, 1], got {self.backbone_lr_scale!r}")
        for name in ("recon_weight", "cls_weight", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("test_fraction", "val_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)!r}")
        if not ARCHITECTURES[self.arch].backbones and self.pretrained != "none":
            # The CAE baseline has no pretrained backbone by definition (paper V.A): a preset's "imagenet" means
            # nothing for it, and recording "none" keeps the saved config true to what was trained.
            object.__setattr__(self, "pretrained", "none")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**known_fields(cls, data))

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given fields replaced; None values are ignored (unset command-line flags)."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def phase2_start(self) -> int:
        """First epoch (1-based) of phase 2 when phase 1 runs."""
        return self.phase1_epochs + 1


@dataclass(frozen=True)
class RunOptions:
    """How a run executes on this machine; not part of what is trained, so --resume may change it."""

    device: str = "auto"  # "auto" (cuda when available) | "cpu" | "cuda"
    amp: bool | None = None  # bf16 autocast; None = on for CUDA and CPUs with native bf16 (AVX512_BF16 / AMX), else off
    channels_last: bool = True  # NHWC activations: tensor cores on CUDA; also faster on CPUs (oneDNN; README)
    compile: bool = False  # torch.compile the model (first epoch pays the compile time)
    progress: bool = True  # tqdm bars (also off when stderr is not a terminal)
    tensorboard: bool = True  # TensorBoard event files when the `tensorboard` package is importable
    # torch intra-op threads on the CPU; None = torch's default. On a CPU shared with other busy processes,
    # OpenMP threads that wait on each other can run many times slower than one thread (docs/measurements.md): pass 1.
    threads: int | None = None

    def __post_init__(self) -> None:
        _choice("device", self.device, DEVICES)
        if self.threads is not None:
            _positive_int("threads", self.threads)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


PAPER = TrainConfig()
# The project's scene-pretrained densenet_small (README, "Scene-pretrained backbones"): made by
# `python -m train pretrain` on generated scenes whose seeds lie above every other set's; its card is beside it.
CPU_WEIGHTS = "weights/densenet_small/backbone.pth"
# Sized for <= 12 minutes of training on an idle 2-core CPU with --folds 1. Both DenseNets start from the shipped
# scene-pretrained backbone, so the paper's two phases run: phase 1 (1 epoch) with the backbones frozen except
# BatchNorm trains decoder, CBAM, fusion and head; phase 2 fine-tunes everything. Validation and held-out test are the
# default split of the 6000 scenes; training sees that split's training part plus 30000 generated scenes of another
# seed, each epoch in a new orientation (dihedral augmentation). Why each field: README, "Recognition from scratch"
# and "Scene-pretrained backbones"; benchmarks/recipe.py. With `--pretrained none` phase 1 is skipped and the
# 4 epochs are the from-scratch recipe measured there.
CPU = TrainConfig(
    backbone="densenet_small",
    pretrained=CPU_WEIGHTS,
    epochs=4,
    phase1_epochs=1,
    phase1_lr=1e-3,
    phase2_lr=2e-3,
    backbone_lr_scale=0.25,  # the backbones at 5e-4 in phase 2: no dip after phase 1 (docs/results.md, issue 20)
    lr_schedule="cosine",
    warmup_epochs=0.2,
    batch_size=64,
    cls_weight=2.0,
    augment="dihedral",
    extra_scenes=30000,
    folds=1,
)
# For tests: real code, a few dozen scenes, 1 + 1 epochs (phase 1 runs when local weights are given).
TINY = TrainConfig(
    backbone="densenet_tiny",
    pretrained="none",
    epochs=2,
    phase1_epochs=1,
    phase2_lr=1e-3,
    batch_size=16,
    eval_batch_size=64,
    n_scenes=100,
    folds=1,
)
PRESETS: dict[str, TrainConfig] = {"paper": PAPER, "cpu": CPU, "tiny": TINY}


def saved_defaults() -> dict[str, Any]:
    """TrainConfig's defaults as a saved train_config holds them (config.json, a checkpoint: JSON values, lists for
    tuples): what a field added since a config was saved had then (check_resumable, benchmarks.runs_table)."""
    return json.loads(json.dumps(TrainConfig().to_dict()))


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
