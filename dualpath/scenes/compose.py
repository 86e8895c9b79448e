"""Composition: background + 1-3 overlapping, occluding, shadowed utensils -> clean composite -> degraded input.

render_scene(config, seed, index) is the public entry point; it is a pure function of its arguments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dualpath import contract
from dualpath.scenes.bank import Bank, Sprite, build_bank, canvas_px_per_cm
from dualpath.scenes.config import SceneConfig
from dualpath.scenes.degrade import degrade
from dualpath.scenes.importer import MIN_OBJECT_PIXELS
from dualpath.scenes.layout import scene_classes

_SCENE_STREAM = 0x5CE  # seed-sequence tag of the per-scene random stream
_PLACEMENT_TRIES = 8
_EDGE_SLACK = 0.1  # an object's box may leave the frame by this share of its size on each side


@dataclass(frozen=True)
class Scene:
    noisy: np.ndarray  # uint8 (S, S, 3) RGB: the degraded model input
    clean: np.ndarray  # uint8 (S, S, 3) RGB: the same composite before degradation (reconstruction target)
    labels: np.ndarray  # uint8 (20,) multi-hot
    classes: tuple[int, ...]  # class of each object, bottom to top
    masks: np.ndarray  # uint8 (k, S, S) 0/1 visible (not occluded) pixels of each object, in `classes` order
    boxes: np.ndarray  # int16 (k, 4) x0, y0, x1, y1 (exclusive) of each object's whole in-frame extent
    visible: np.ndarray  # float32 (k,) visible fraction of each object's area (occlusion and frame clipping)


@dataclass(frozen=True)
class _Placed:
    """One object on the canvas, stored only over its bounding box (ROI): most of the canvas is background."""

    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    rgba: np.ndarray  # uint8 (h, w, 4) premultiplied, as warped (colour is converted only for placed objects)
    y0: int  # top-left corner of the ROI on the canvas
    x0: int
    full_area: float  # the object's whole area in canvas pixels, in frame or not

    @property
    def window(self) -> tuple[slice, slice]:
        h, w = self.alpha.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)


def _warp(sprite: Sprite, matrix: np.ndarray, size: int, full_area: float) -> _Placed:
    """Warp the sprite onto the canvas, computing only the canvas window its corners cover."""
    h, w = sprite.rgba.shape[:2]
    lo_x, lo_y, hi_x, hi_y = _box(matrix, w, h)
    x0, y0 = (min(max(math.floor(v) - 1, 0), size) for v in (lo_x, lo_y))
    x1, y1 = (min(max(math.ceil(v) + 2, 0), size) for v in (hi_x, hi_y))
    if x1 <= x0 or y1 <= y0:  # entirely out of frame
        return _Placed(np.zeros((0, 0), np.float32), np.zeros((0, 0, 4), np.uint8), 0, 0, full_area)
    m = matrix.copy()
    m[:, 2] -= (x0, y0)
    out = cv2.warpAffine(sprite.rgba, m, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.extractChannel(out, 3).astype(np.float32) * np.float32(1 / 255)
    return _Placed(alpha, out, int(y0), int(x0), full_area)


def _pose(rng: np.random.Generator, config: SceneConfig, sprite: Sprite, bank: Bank, centre) -> tuple[np.ndarray, float]:
    """2x3 affine matrix from the sprite onto the canvas: flip, rotate, scale about the sprite's centre, translate."""
    scale = canvas_px_per_cm(config) / bank.px_per_cm * rng.uniform(*config.scale_jitter)
    angle = rng.uniform(0.0, 360.0)
    flip = rng.random() < config.flip_p
    h, w = sprite.rgba.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    if flip:  # mirror the sprite about its vertical axis before rotating
        m = m @ np.array([[-1.0, 0.0, w], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    m[:, 2] += np.asarray(centre) - np.array([w / 2, h / 2])
    return m, scale


def _centre(rng: np.random.Generator, config: SceneConfig, placed: list[tuple[np.ndarray, float]]) -> np.ndarray:
    r = config.render_size
    if placed and rng.random() < config.overlap_p:
        # Near an earlier object, closer than its length: the two overlap and the later one occludes.
        anchor, length = placed[rng.integers(len(placed))]
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.05, 0.35) * length
        c = anchor + dist * np.array([np.cos(angle), np.sin(angle)])
        return np.clip(c, 0.2 * r, 0.8 * r)
    lo, hi = (0.3, 0.7) if not placed else (0.2, 0.8)
    return rng.uniform(lo * r, hi * r, size=2)


def _box(matrix: np.ndarray, w: int, h: int) -> tuple[float, float, float, float]:
    """(x min, y min, x max, y max) of a w x h sprite's corners under the 2x3 affine `matrix` (plain floats: numpy
    costs more than the arithmetic on four points)."""
    (a, b, c), (d, e, f) = matrix.tolist()
    xs = (c, a * w + c, b * h + c, a * w + b * h + c)
    ys = (f, d * w + f, e * h + f, d * w + e * h + f)
    return min(xs), min(ys), max(xs), max(ys)


def _nudge_into_frame(matrix: np.ndarray, centre: np.ndarray, sprite: Sprite, size: int) -> tuple[np.ndarray, bool]:
    """Move a pose (in place) so that the sprite's box sticks out of the frame by at most _EDGE_SLACK of its size on
    each side (centred when it is longer than the frame): long utensils near an edge keep their telling end in view
    without spending placement tries. Returns the new centre, and whether the box fits (False: centred)."""
    h, w = sprite.rgba.shape[:2]
    lo_x, lo_y, hi_x, hi_y = _box(matrix, w, h)
    shift, fits = [], True
    for lo, hi in ((lo_x, hi_x), (lo_y, hi_y)):
        slack = _EDGE_SLACK * (hi - lo)
        if hi - lo > size + 2 * slack:
            shift.append((size - lo - hi) / 2)
            fits = False
        else:
            shift.append(max(0.0, -slack - lo) - max(0.0, hi - size - slack))
    matrix[0, 2] += shift[0]
    matrix[1, 2] += shift[1]
    return np.asarray(centre, np.float64) + shift, fits


def _overlap(a: _Placed, b: _Placed) -> bool:
    """Whether the two objects' canvas windows intersect."""
    (ah, aw), (bh, bw) = a.alpha.shape, b.alpha.shape
    return a.y0 < b.y0 + bh and b.y0 < a.y0 + ah and a.x0 < b.x0 + bw and b.x0 < a.x0 + aw


def _visible_alphas(objects: list[_Placed], size: int) -> list[np.ndarray]:
    """Per object, the part of its alpha (over its ROI) that later (higher) objects leave visible."""
    cover = np.zeros((size, size), np.float32)
    out: list[np.ndarray] = [np.empty(0)] * len(objects)
    for k in range(len(objects) - 1, -1, -1):
        o = objects[k]
        region = cover[o.window]
        out[k] = o.alpha * (1.0 - region)
        region += out[k]  # in place: cover is the union of everything above the next object down
    return out


def _visible_fractions(objects: list[_Placed], size: int, vis: list[np.ndarray] | None = None) -> np.ndarray:
    """Visible share of each object's whole area: what later objects and the frame leave of it."""
    vis = _visible_alphas(objects, size) if vis is None else vis
    return np.array([float(v.sum()) / max(o.full_area, 1e-6) for v, o in zip(vis, objects)], np.float32)


def _place_objects(rng: np.random.Generator, config: SceneConfig, bank: Bank,
                   classes) -> tuple[list[_Placed], tuple[int, ...]]:
    """The placed objects and their classes: every class of `classes`, except one whose best try would leave it (or
    an object under it) with fewer than MIN_OBJECT_PIXELS visible pixels in the output, which is left out unlabelled:
    a scene never labels an object no one can see."""
    objects: list[_Placed] = []
    placed_classes: list[int] = []
    fractions = np.zeros(0, np.float32)  # visible share of each placed object
    anchors: list[tuple[np.ndarray, float]] = []
    size = config.render_size
    for c in classes:
        variants = bank.sprites[c]
        sprite = variants[rng.integers(len(variants))]
        best, best_margin = None, -np.inf
        for attempt in range(_PLACEMENT_TRIES):
            centre = _centre(rng, config, anchors if attempt < _PLACEMENT_TRIES // 2 else [])
            matrix, scale = _pose(rng, config, sprite, bank, centre)
            centre, fits = _nudge_into_frame(matrix, centre, sprite, size)
            candidate = _warp(sprite, matrix, size, sprite.area * scale * scale)
            # Keep every labelled object recognisable: most of the new object inside the frame (a utensil's telling
            # end, a whisk's or masher's head, must not be cut off), and no object mostly hidden or out of frame.
            # An object longer than the frame at this angle is centred on it, as far in as it can be: no retry.
            in_frame = float(candidate.alpha.sum()) / max(candidate.full_area, 1e-6)
            margin = in_frame - config.min_in_frame if fits else 0.0
            visible = None
            if margin >= 0.0:
                if any(_overlap(o, candidate) for o in objects):
                    visible = _visible_fractions(objects + [candidate], size)
                else:  # nothing hidden: the others keep their shares, the new one shows all its in-frame part
                    visible = np.append(fractions, np.float32(in_frame))
                margin = min(margin, float(visible.min()) - config.min_visible)
            if margin > best_margin:
                best, best_margin = (candidate, centre, scale, visible), margin
            if margin >= 0.0:
                break
        candidate, centre, scale, visible = best  # a crowded scene that never fits keeps the try that came closest
        if best_margin < 0.0 and objects and _hides_an_object(objects + [candidate], config):
            continue  # no try leaves every object visible: this one is not placed (nor labelled)
        objects.append(candidate)
        placed_classes.append(int(c))
        fractions = visible if visible is not None else _visible_fractions(objects, size)
        anchors.append((centre, max(sprite.rgba.shape[:2]) * scale))
    return objects, tuple(placed_classes)


def _hides_an_object(objects: list[_Placed], config: SceneConfig) -> bool:
    """Whether some object shows fewer than MIN_OBJECT_PIXELS pixels of its visible mask at the output size (the
    masks a data set stores)."""
    masks, _, _ = _masks_and_boxes(objects, config.render_size, config.image_size)
    return bool((masks.reshape(len(objects), -1).sum(1) < MIN_OBJECT_PIXELS).any())


def _background(rng: np.random.Generator, config: SceneConfig, bank: Bank) -> np.ndarray:
    r = config.render_size
    tex = bank.backgrounds[rng.integers(len(bank.backgrounds))]
    y, x = rng.integers(0, tex.shape[0] - r + 1), rng.integers(0, tex.shape[1] - r + 1)
    img = tex[y : y + r, x : x + r]
    turn = int(rng.integers(4))
    if turn:
        img = cv2.rotate(img, (cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE)[turn - 1])
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    return img.astype(np.float32)  # the canvas stays in 0..255 units: no scaling pass in or out


def _shadow_map(objects: list[_Placed], size: int, offset: tuple[int, int], blur: float) -> np.ndarray:
    """Soft contact shadows of all objects on the surface: their alphas moved by `offset`, merged, blurred."""
    dy, dx = offset
    shadow = np.zeros((size, size), np.float32)
    for obj in objects:
        if obj.alpha.size == 0:
            continue
        h, w = obj.alpha.shape
        y0, x0 = obj.y0 + dy, obj.x0 + dx
        ya, xa, yb, xb = max(y0, 0), max(x0, 0), min(y0 + h, size), min(x0 + w, size)
        if ya < yb and xa < xb:
            np.maximum(shadow[ya:yb, xa:xb], obj.alpha[ya - y0 : yb - y0, xa - x0 : xb - x0], out=shadow[ya:yb, xa:xb])
    return cv2.GaussianBlur(shadow, (0, 0), blur)


def _composite(rng: np.random.Generator, config: SceneConfig, bank: Bank, objects: list[_Placed]) -> np.ndarray:
    canvas = _background(rng, config, bank)
    r = config.render_size
    light_angle = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(0.008, 0.025) * r  # objects lie on the surface: short, soft contact shadows
    offset = (int(round(dist * np.sin(light_angle))), int(round(dist * np.cos(light_angle))))
    strength = np.float32(rng.uniform(*config.shadow_strength))
    blur = rng.uniform(0.6, 1.6) * r / 128
    if config.shadows:
        # Objects lie flat on the counter: their shadows fall on the surface around them (one pass for all of them).
        shade = 1.0 - strength * _shadow_map(objects, r, offset, blur)
        canvas *= cv2.merge([shade, shade, shade])
    for obj in objects:
        if obj.alpha.size == 0:
            continue
        # Split channels with OpenCV and repeat alpha per channel: numpy on strided RGBA views, or broadcasting
        # over a last axis of 3, is several times slower.
        window = canvas[obj.window]
        window *= 1.0 - cv2.merge([obj.alpha, obj.alpha, obj.alpha])
        window += cv2.cvtColor(obj.rgba, cv2.COLOR_RGBA2RGB).astype(np.float32)
    canvas *= bank.lights[rng.integers(len(bank.lights))]  # (R, R, 3): lighting with a colour cast
    return canvas


def _to_output(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[0] != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


def _masks_and_boxes(objects: list[_Placed], r: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Visible masks and whole-extent boxes at the output size, and visible fractions, of every object."""
    seen_alphas = _visible_alphas(objects, r)
    k, f = len(objects), s / r
    masks = np.zeros((k, s, s), np.uint8)
    boxes = np.zeros((k, 4), np.int16)
    plane = np.zeros((r, r), np.float32)
    for j, (obj, seen) in enumerate(zip(objects, seen_alphas)):
        # One plane at a time: OpenCV's area resize takes at most 4 channels for non-integer factors.
        plane[obj.window] = seen
        masks[j] = _to_output(plane, s) > 0.5
        plane[obj.window] = 0.0
        rows, cols = np.flatnonzero(obj.alpha.max(1) > 0.5), np.flatnonzero(obj.alpha.max(0) > 0.5)
        if len(rows):  # the box of the whole object, from its canvas pixels scaled to output pixels
            x0, x1 = int((obj.x0 + cols[0]) * f), int(np.ceil((obj.x0 + cols[-1] + 1) * f))
            y0, y1 = int((obj.y0 + rows[0]) * f), int(np.ceil((obj.y0 + rows[-1] + 1) * f))
            boxes[j] = (x0, y0, x1, y1)
    return masks, boxes, _visible_fractions(objects, r, seen_alphas)


def render_scene(config: SceneConfig, seed: int, index: int) -> Scene:
    """Scene `index` of the data set (config, seed): same arguments, same bytes."""
    bank = build_bank(config)
    classes = scene_classes(config, seed, index)
    # Philox is counter-based: keyed by (seed, index) it gives independent streams and is cheap to set up per scene
    # (a SeedSequence costs more than some of the rendering).
    rng = np.random.Generator(np.random.Philox(key=[index, seed], counter=[0, 0, 0, _SCENE_STREAM]))
    objects, classes = _place_objects(rng, config, bank, classes)
    canvas = _composite(rng, config, bank, objects)
    s = config.image_size
    clean = cv2.convertScaleAbs(_to_output(canvas, s))  # rounds and saturates to uint8
    noisy = degrade(clean, config.degrade, rng)

    masks, boxes, visible = _masks_and_boxes(objects, config.render_size, s)
    labels = np.zeros(contract.NUM_CLASSES, np.uint8)
    labels[list(classes)] = 1
    return Scene(noisy, clean, labels, tuple(classes), masks, boxes, visible)
