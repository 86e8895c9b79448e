"""SceneConfig: every knob of the Complex Scene Generator, validated, JSON-able (it goes into each manifest)."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from dualpath import contract
from dualpath.configio import known_fields
from dualpath.scenes.backgrounds import BACKGROUND_KINDS

# Bump when a change alters the bytes of any scene for the same (config, seed, index): manifests record it, so a
# cached data set made by an older generator is refused instead of silently mixed with new scenes.
GENERATOR_VERSION = "1.1"  # 1.1: field of view 34 -> 24 cm; objects nudged into the frame, keep min_in_frame of it
# The bounded severity scale (below) changed the bytes of severities above 1 only. Instead of a version bump, which
# would retire every cached default, calibration and drift set although their bytes stand, a config above severity 1
# carries this mark in its JSON (SceneConfig.to_dict): its manifests and cache tags differ from generator 1.1's
# unbounded scale, so a set cached before is refused or made anew beside it, never reused.
SEVERITY_SCALE = "bounded"


def _check_range(name: str, rng: tuple[float, float], lo: float, hi: float) -> None:
    if len(rng) != 2 or not (lo <= rng[0] <= rng[1] <= hi):
        raise ValueError(f"{name} must be a (min, max) pair with {lo} <= min <= max <= {hi}, got {rng}")


# The severity scale (dualpath/scenes/degrade.py draw(); measured in docs/measurements.md, "The severity scale").
# From 0 (clean) to 1 (the default data set) every degradation grows linearly to the values drawn from the ranges
# below, as in generator 1.1, byte for byte. Beyond 1 a plain multiple made severity 3 unreadable: the brightness
# factor reached its 0.02 clamp (a third of the drift scenes' means under 0.05), JPEG quality its floor of 5 (8x8
# blocks) and blur sigma 3.6 px. So beyond 1 each degradation moves towards a bound that it reaches at SEVERITY_MAX:
SEVERITY_MAX = 4.0  # the top of the scale
BRIGHTNESS_FLOOR = 0.4  # low light: the factor goes from its severity-1 draw (0.5-0.9) towards this, never below it
GAMMA_CEILING = 1.5  # ... and the tone curve's gamma from its draw (1.0-1.4) towards this: shadows stay above black
JPEG_QUALITY_FLOOR = 20  # JPEG quality from its draw (35-75) towards this; below ~20 8x8 blocks hide thin handles
BLUR_GROWTH = 0.5  # blur sigma and motion-blur length: x(1 + 0.5 (s - 1)) their severity-1 draw (x2 at 3)
NOISE_GROWTH = 0.25  # sensor noise: x(1 + 0.25 (s - 1)) (x1.5 at 3): on a darker image noise costs most legibility


@dataclass(frozen=True)
class DegradeConfig:
    """Degradations applied to the clean 64x64 composite to make the model input (paper IV.A: low light, blur, noise).

    Ranges are sampled uniformly per scene and are the severity-1 values; `severity` moves all of them at once
    (0 = no degradation, 1 = the default mix, 2 and 3 = harder, 3 still readable by a person, 4 the bounds above),
    which is how drift reports sweep from clean to very degraded. The scale's shape: the constants above.
    """

    severity: float = 1.0
    brightness: tuple[float, float] = (0.5, 0.9)  # multiplicative low-light factor at severity 1
    gamma: tuple[float, float] = (1.0, 1.4)  # > 1 darkens shadows further, as underexposed sensors do
    blur_sigma: tuple[float, float] = (0.4, 1.2)  # Gaussian blur sigma in output pixels
    noise_std: tuple[float, float] = (0.015, 0.05)  # additive Gaussian noise, std in [0, 1] intensity units
    shot_noise: tuple[float, float] = (0.0, 0.03)  # signal-dependent part: std = k * sqrt(intensity)
    motion_blur_p: float = 0.0  # probability of a linear motion blur (optional, off by default)
    motion_blur_length: tuple[float, float] = (3.0, 7.0)  # kernel length in pixels
    jpeg_p: float = 0.0  # probability of JPEG re-compression artefacts (optional, off by default)
    jpeg_quality: tuple[int, int] = (35, 75)

    def __post_init__(self) -> None:
        if not 0.0 <= self.severity <= SEVERITY_MAX:
            raise ValueError(f"severity must be in [0, {SEVERITY_MAX:g}] (0 = clean, 1 = default, 3 = hardest of the "
                             f"drift sweep), got {self.severity}")
        _check_range("brightness", self.brightness, 0.05, 1.0)
        _check_range("gamma", self.gamma, 0.2, 3.0)
        _check_range("blur_sigma", self.blur_sigma, 0.0, 5.0)
        _check_range("noise_std", self.noise_std, 0.0, 0.5)
        _check_range("shot_noise", self.shot_noise, 0.0, 0.5)
        _check_range("motion_blur_length", self.motion_blur_length, 1.0, 31.0)
        _check_range("jpeg_quality", self.jpeg_quality, 5, 100)
        for name in ("motion_blur_p", "jpeg_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class SceneConfig:
    """How scenes look. Scene i is a pure function of (SceneConfig, seed, i)."""

    image_size: int = contract.IMAGE_SIZE  # output side (model input), pixels
    render_size: int = 128  # side of the composite canvas before the anti-aliased resize to image_size
    # Counter width shown; fixes real sizes: a 14 cm teaspoon spans ~0.6 of the image, a 30 cm ladle lies across it
    # (close-ups, as photos of utensils are framed). In a wider view the small utensils' telling parts are a few
    # pixels at 64 px and a from-scratch model learns them much more slowly (generator 1.0's 34 cm view:
    # docs/measurements.md).
    field_of_view_cm: float = 24.0
    scale_jitter: tuple[float, float] = (0.85, 1.15)  # per-object scale augmentation (camera distance, perspective)
    cardinality_weights: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)  # P(1 object), P(2), P(3); default equal thirds
    balance_block: int = 60  # scenes per balanced block: within a block every class and cardinality is exact
    overlap_p: float = 0.85  # probability that each further object is placed overlapping an earlier one
    min_visible: float = 0.35  # every labelled object keeps at least this fraction of its area visible
    min_in_frame: float = 0.85  # ... and each object, when placed, at least this fraction of its area inside the frame
    flip_p: float = 0.5  # horizontal flip probability (before rotation)
    shadows: bool = True
    shadow_strength: tuple[float, float] = (0.25, 0.55)
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS  # procedural counter tops (dualpath/scenes/backgrounds.py)
    backgrounds_per_kind: int = 8  # procedural backgrounds rendered into the bank for each kind
    background_dir: str | None = None  # a folder of background photos that replaces the procedural ones
    variants_per_class: int = 32  # procedural instances of each utensil in the bank (the "catalogue")
    object_bank: str | None = None  # an .npz of imported real-object sprites (python -m dualpath.scenes import-objects)
    bank_seed: int = 0  # the catalogue of objects and backgrounds; scenes of every seed draw from the same one
    degrade: DegradeConfig = field(default_factory=DegradeConfig)

    def __post_init__(self) -> None:
        if isinstance(self.degrade, dict):  # from JSON
            degrade = dict(self.degrade)
            scale = degrade.pop("severity_scale", SEVERITY_SCALE)
            if scale != SEVERITY_SCALE:
                raise ValueError(f"degrade.severity_scale {scale!r} is not this generator's ({SEVERITY_SCALE!r})")
            object.__setattr__(self, "degrade", DegradeConfig(**_tuples(degrade)))
        if self.image_size < 16 or self.render_size < self.image_size:
            raise ValueError(
                f"need 16 <= image_size <= render_size, got image_size={self.image_size}, render_size={self.render_size}"
            )
        if not 5.0 <= self.field_of_view_cm <= 200.0:
            raise ValueError(f"field_of_view_cm must be in [5, 200] cm, got {self.field_of_view_cm}")
        _check_range("scale_jitter", self.scale_jitter, 0.1, 5.0)
        w = self.cardinality_weights
        if not 1 <= len(w) <= 3 or any(x < 0 for x in w) or sum(w) <= 0:
            raise ValueError(
                "cardinality_weights gives P(1 object), P(2), P(3): 1 to 3 non-negative numbers, not all zero; "
                f"got {w}"
            )
        if self.balance_block < 1:
            raise ValueError(f"balance_block must be >= 1, got {self.balance_block}")
        for name in ("overlap_p", "min_visible", "min_in_frame", "flip_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _check_range("shadow_strength", self.shadow_strength, 0.0, 1.0)
        if not self.background_kinds and self.background_dir is None:
            raise ValueError("background_kinds is empty and no background_dir is given: scenes need a background")
        if not set(self.background_kinds) <= set(BACKGROUND_KINDS):
            raise ValueError(f"background_kinds must be a tuple of procedural kinds ({', '.join(BACKGROUND_KINDS)}), "
                             f"got {self.background_kinds!r}; photos of your own go in background_dir")
        if self.backgrounds_per_kind < 1 or self.variants_per_class < 1:
            raise ValueError("backgrounds_per_kind and variants_per_class must be >= 1")

    @property
    def max_objects(self) -> int:
        return len(self.cardinality_weights)

    def with_severity(self, severity: float) -> "SceneConfig":
        return dataclasses.replace(self, degrade=dataclasses.replace(self.degrade, severity=float(severity)))

    def to_dict(self) -> dict[str, Any]:
        d = json.loads(json.dumps(dataclasses.asdict(self)))
        if self.degrade.severity > 1.0:  # rendered on the bounded scale: not generator 1.1's scenes (SEVERITY_SCALE)
            d["degrade"]["severity_scale"] = SEVERITY_SCALE
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SceneConfig":
        return cls(**_tuples(known_fields(cls, d)))


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; frozen dataclasses hash and compare better with tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
