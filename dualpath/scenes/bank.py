"""The catalogue a data set draws from: utensil sprites per class, background textures, lighting fields.

Built once per process from (config, bank_seed) and cached; each worker of a generation run builds (or, forked,
inherits) the same bytes, so a scene does not depend on which process rendered it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from dualpath import contract
from dualpath.scenes import backgrounds, sprites
from dualpath.scenes.config import SceneConfig

BACKGROUND_SIZE = 192  # bank textures are larger than the canvas: each scene crops a random window
N_LIGHTS = 64  # lighting fields in the bank; scenes pick one and flip/rotate it


@dataclass(frozen=True)
class Sprite:
    rgba: np.ndarray  # uint8 (H, W, 4), colour PREMULTIPLIED by alpha (clean edges under warping)
    area: float  # sum of alpha (in pixels at the bank's px_per_cm), for visible-fraction checks


@dataclass(frozen=True)
class Bank:
    sprites: tuple[tuple[Sprite, ...], ...]  # [class][variant]
    backgrounds: tuple[np.ndarray, ...]  # uint8 (BACKGROUND_SIZE, BACKGROUND_SIZE, 3) RGB
    lights: tuple[np.ndarray, ...]  # float32 (render_size, render_size, 3): lighting field x colour cast
    px_per_cm: float  # sprite scale in the bank


def canvas_px_per_cm(config: SceneConfig) -> float:
    return config.render_size / config.field_of_view_cm


def _premultiply(rgba: np.ndarray) -> Sprite:
    rgba = np.ascontiguousarray(rgba)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba.copy()
    out[..., :3] = np.round(rgba[..., :3].astype(np.float32) * a).astype(np.uint8)
    return Sprite(out, float(a.sum()))


def _fit(rgba: np.ndarray, height_px: float) -> np.ndarray:
    """Resize a canonical (vertical) sprite so its height is height_px, with area interpolation (no aliasing)."""
    h, w = rgba.shape[:2]
    f = height_px / h
    size = (max(1, round(w * f)), max(1, round(height_px)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgba, size, interpolation=interp)


def _rng(config: SceneConfig, *tags: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.bank_seed, *tags]))


def _procedural_sprites(config: SceneConfig, px_per_cm: float) -> list[list[Sprite]]:
    out = []
    for c in range(contract.NUM_CLASSES):
        variants = []
        for v in range(config.variants_per_class):
            rgba = sprites.render_utensil(c, _rng(config, 1, c, v))
            variants.append(_premultiply(_fit(rgba, rgba.shape[0] * px_per_cm / sprites.PX_PER_CM_DEFAULT)))
        out.append(variants)
    return out


def _imported_sprites(config: SceneConfig, px_per_cm: float) -> list[list[Sprite]]:
    from dualpath.scenes import importer  # only needed when a user brings real photos

    found = importer.load_object_bank(config.object_bank)
    missing = [contract.CLASS_NAMES[c] for c in range(contract.NUM_CLASSES) if not found.get(c)]
    if missing:
        raise ValueError(
            f"object bank {config.object_bank} has no sprites for {len(missing)} classes: {', '.join(missing)}. "
            "Every class needs at least one photo; add them and re-run `python -m dualpath.scenes import-objects`."
        )
    out = []
    for c in range(contract.NUM_CLASSES):
        # Photos carry no scale: give each object its class's typical real length, varied like the procedural ones.
        lo, hi = sprites.LENGTH_CM[contract.CLASS_NAMES[c]]
        rng = _rng(config, 2, c)
        out.append([_premultiply(_fit(rgba, rng.uniform(lo, hi) * px_per_cm)) for rgba in found[c]])
    return out


def _backgrounds(config: SceneConfig) -> list[np.ndarray]:
    if config.background_dir is not None:
        images, _ = backgrounds.load_background_photos(config.background_dir, BACKGROUND_SIZE)
        return images
    return [
        backgrounds.render_background(kind, _rng(config, 3, k, j), BACKGROUND_SIZE)
        for k, kind in enumerate(config.background_kinds)
        for j in range(config.backgrounds_per_kind)
    ]


def _light(config: SceneConfig, j: int) -> np.ndarray:
    rng = _rng(config, 4, j)
    field = np.asarray(backgrounds.lighting_field(rng, config.render_size), np.float32)
    cast = rng.uniform(0.9, 1.1, size=3).astype(np.float32)  # white balance: warm bulbs to cool daylight
    return np.ascontiguousarray(field[..., None] * cast)


_INSTALLED: dict[SceneConfig, Bank] = {}


def install_bank(config: SceneConfig, bank: Bank) -> None:
    """Hand a worker process the bank its parent built, instead of building it again."""
    _INSTALLED[config] = bank


def build_bank(config: SceneConfig) -> Bank:
    """The catalogue for `config` (cached per process)."""
    return _INSTALLED.get(config) or _build_bank(config)


@lru_cache(maxsize=4)
def _build_bank(config: SceneConfig) -> Bank:
    # Sprites are stored slightly larger than the largest size a scene uses, so placing them only ever shrinks
    # them a little (bilinear warps alias when they shrink by 2x or more).
    px_per_cm = canvas_px_per_cm(config) * config.scale_jitter[1]
    make = _imported_sprites if config.object_bank is not None else _procedural_sprites
    sprite_lists = make(config, px_per_cm)
    lights = [_light(config, j) for j in range(N_LIGHTS)]
    return Bank(
        sprites=tuple(tuple(v) for v in sprite_lists),
        backgrounds=tuple(_backgrounds(config)),
        lights=tuple(lights),
        px_per_cm=px_per_cm,
    )

