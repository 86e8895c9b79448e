"""Rasteriser and shader of the utensil sprites: shapes.py's parts (in cm) -> one uint8 RGBA sprite.

One rasteriser draws every part at a supersampled resolution with anti-aliased edges, shades it from a height
map (blurred coverage: convex bevels for handles and blades, concave dishes for bowls) and composites the parts
in order. numpy + OpenCV, deterministic: the same generator state gives the same bytes.

render_utensil(cls, rng, px_per_cm) is the public entry point; LENGTH_CM (the real length range of each class)
is re-exported from shapes.py, where the geometry lives.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dualpath.contract import CLASS_NAMES, class_index
from dualpath.scenes.shapes import LENGTH_CM, Material, Part, Stroke, utensil_parts

__all__ = ["LENGTH_CM", "PX_PER_CM_DEFAULT", "render_utensil"]

PX_PER_CM_DEFAULT = 8.0

_MARGIN_PX = 3  # transparent border around the tight crop (final pixels)
_MIN_CANVAS_PX_PER_CM = 8.0  # supersample until the drawing grid has at least this density
_SHIFT = 3  # cv2 sub-pixel bits for polygon vertices
_LIGHT = np.array([-0.5, -0.6, 0.62]) / np.linalg.norm([-0.5, -0.6, 0.62])  # from the top left
_HALF = (_LIGHT + np.array([0.0, 0.0, 1.0])) / np.linalg.norm(_LIGHT + np.array([0.0, 0.0, 1.0]))


# --------------------------------------------------------------------------------------- rasteriser
@dataclass(frozen=True)
class _Grid:
    scale: float  # canvas px per cm
    x0: float  # cm at canvas pixel 0 (pixel centres at integer + 0.5)
    y0: float
    shape: tuple[int, int]

    def px(self, pts: np.ndarray) -> np.ndarray:
        p = (np.asarray(pts, np.float64) - (self.x0, self.y0)) * self.scale - 0.5
        return np.round(p * (1 << _SHIFT)).astype(np.int32)


def _shape_bounds(shape) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(shape, Stroke):
        return shape.points.min(0) - shape.width / 2, shape.points.max(0) + shape.width / 2
    return shape.min(0), shape.max(0)


def _draw(mask: np.ndarray, shape, grid: _Grid, value: int) -> None:
    if isinstance(shape, Stroke):
        thick = max(1, round(shape.width * grid.scale - 1.0))  # LINE_AA adds about a pixel
        cv2.polylines(mask, [grid.px(shape.points)], shape.closed, value, thick, cv2.LINE_AA, _SHIFT)
    else:
        cv2.fillPoly(mask, [grid.px(shape)], value, cv2.LINE_AA, _SHIFT)


def _bevel_sigma(bevel: float, scale: float) -> float:
    return float(np.clip(0.5 * bevel * scale, 0.6, 12.0))  # px


def _height(cover: np.ndarray, scale: float, bevel: float, dish: float) -> np.ndarray:
    """Height map (cm): the blurred coverage rounds the edges (smooth even along slanted, aliased
    outlines, unlike a distance transform of the binary mask); a dish sinks the inside of a bowl."""
    r = max(bevel, 1e-3)
    h = 2.0 * r * cv2.GaussianBlur(cover, (0, 0), _bevel_sigma(bevel, scale), borderType=cv2.BORDER_CONSTANT)
    if dish > 0:
        d = _distance_to_edge(cover >= 0.5) / scale
        s = np.clip((d - 0.6 * r) / max(float(d.max()) - 0.6 * r, 1e-3), 0.0, 1.0)
        sink = (dish * (1.0 - (1.0 - s) ** 2)).astype(np.float32)
        h -= cv2.GaussianBlur(sink, (0, 0), 1.5)  # the distance field is faceted; keep its normals smooth
    return h


def _distance_to_edge(inside: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance (px) of each inside pixel to the outside, the same floats on every call.

    OpenCV's DIST_MASK_PRECISE rounds differently depending on where its buffers lie in memory (SIMD peeling): the
    same mask gave a serving spoon other bytes from one call to the next. Both buffers are therefore 64-byte aligned,
    and OpenCV runs on one thread for the call (its split of rows between threads must not vary either)."""
    src = _aligned(inside.shape, np.uint8)
    src[...] = inside
    dst = _aligned(inside.shape, np.float32)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        cv2.distanceTransform(src, cv2.DIST_L2, cv2.DIST_MASK_PRECISE, dst=dst)
    finally:
        cv2.setNumThreads(threads)
    return dst


def _aligned(shape: tuple[int, ...], dtype: type, align: int = 64) -> np.ndarray:
    """An empty C-contiguous array whose data starts on an `align`-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    start = -raw.ctypes.data % align
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _normals(h: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gx = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=3, scale=scale / 8.0)
    gy = cv2.Sobel(h, cv2.CV_32F, 0, 1, ksize=3, scale=scale / 8.0)
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    return -gx * inv, -gy * inv, inv


def _wood_grain(mat: Material, grid: _Grid, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray:
    """Grain lines along the long axis, seeded per material so every part of one spoon shares them."""
    g = np.random.default_rng(mat.grain_seed)
    H, W = grid.shape
    s = grid.scale
    cols = cv2.GaussianBlur(g.normal(0, 1, (1, W + 64)).astype(np.float32), (0, 0), sigmaX=max(0.5, 0.05 * s))[0]
    cols += 0.6 * cv2.GaussianBlur(g.normal(0, 1, (1, W + 64)).astype(np.float32), (0, 0), sigmaX=0.25 * s)[0]
    cols = np.tanh(cols / (cols.std() + 1e-6) * 0.9)
    rows = np.arange(H, dtype=np.float32)
    wave = (0.25 * s * np.sin(rows / (g.uniform(5, 9) * s) * 2 * np.pi + g.uniform(0, 6.3))
            + 0.1 * s * np.sin(rows / (g.uniform(1.5, 3) * s) * 2 * np.pi + g.uniform(0, 6.3)))
    xs = np.arange(x0, x0 + shape[1])[None, :] + wave[y0:y0 + shape[0], None] + 32
    idx = np.clip(xs.astype(np.int32), 0, W + 63)
    return 1.0 + 0.13 * cols[idx]


def _pow2(x: np.ndarray, k: int) -> np.ndarray:
    """x ** (2 ** k) by repeated squaring: float powers dominate the shading time otherwise."""
    for _ in range(k):
        x = x * x
    return x


def _sheen(shape: tuple[int, int], origin: tuple[int, int], grid: _Grid, sheen: tuple[float, float, float, float]):
    """A slow wave of reflected brightness across the whole sprite, separable in x and y (cheap)."""
    fx, fy, phase = sheen[0] * sheen[2] / grid.scale, sheen[1] * sheen[2] / grid.scale, sheen[3]
    ax = (np.arange(shape[1], dtype=np.float32) + origin[1]) * fx + phase
    ay = (np.arange(shape[0], dtype=np.float32) + origin[0]) * fy
    return np.sin(ax)[None, :] * np.cos(ay)[:, None] + np.cos(ax)[None, :] * np.sin(ay)[:, None]  # sin(ax + ay)


def _shade(part: Part, cover: np.ndarray, grid: _Grid, origin: tuple[int, int],
           sheen: tuple[float, float, float, float]) -> np.ndarray:
    h = _height(cover, grid.scale, part.bevel, part.dish)
    nx, ny, nz = _normals(h, grid.scale)
    ndl = np.clip(nx * _LIGHT[0] + ny * _LIGHT[1] + nz * _LIGHT[2], 0.0, 1.0)
    ndh = np.maximum(nx * _HALF[0] + ny * _HALF[1] + nz * _HALF[2], 0.0)
    base = np.asarray(part.material.rgb, np.float32)
    kind = part.material.kind
    if kind == "metal":
        # high contrast across curved parts, a sharp highlight and a slow reflected wave on flat steel
        lum = 0.28 + 0.7 * ndl * (0.5 + 0.5 * ndl) + 0.17 * _sheen(cover.shape, origin, grid, sheen)
        spec = 0.85 * _pow2(ndh, 6)
    else:
        lum = 0.38 + 0.66 * np.minimum(ndl / _LIGHT[2], 1.3) * 0.82
        spec = {"plastic": 0.3 * _pow2(ndh, 5), "rubber": 0.1 * _pow2(ndh, 3), "wood": 0.06 * _pow2(ndh, 3)}[kind]
    rgb = lum[..., None] * base + spec[..., None]
    if kind == "wood":
        rgb *= _wood_grain(part.material, grid, origin[0], origin[1], cover.shape)[..., None]
    return np.clip(rgb, 0.0, 1.0)


def _rasterize(parts: list[Part], rng: np.random.Generator, px_per_cm: float) -> np.ndarray:
    ss = max(1, int(np.ceil(_MIN_CANVAS_PX_PER_CM / px_per_cm)))
    scale = px_per_cm * ss
    lo = np.min([_shape_bounds(s)[0] for p in parts for s in p.shapes], axis=0)
    hi = np.max([_shape_bounds(s)[1] for p in parts for s in p.shapes], axis=0)
    pad = (_MARGIN_PX + 2) / px_per_cm
    w_out = int(np.ceil((hi[0] - lo[0]) * px_per_cm + 2 * (_MARGIN_PX + 2)))
    h_out = int(np.ceil((hi[1] - lo[1]) * px_per_cm + 2 * (_MARGIN_PX + 2)))
    grid = _Grid(scale, lo[0] - pad, lo[1] - pad, (h_out * ss, w_out * ss))
    rgb = np.zeros(grid.shape + (3,), np.float32)  # premultiplied
    alpha = np.zeros(grid.shape, np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    sheen = (float(np.cos(ang)), float(np.sin(ang)), float(rng.uniform(0.25, 0.6)), float(rng.uniform(0, 2 * np.pi)))
    mask = np.zeros(grid.shape, np.uint8)
    for part in parts:
        mask[:] = 0
        for shape in part.shapes:
            _draw(mask, shape, grid, 255)
        for hole in part.holes:
            _draw(mask, hole, grid, 0)
        x, y, w, h = cv2.boundingRect(mask)
        if w == 0:
            continue
        p = int(3 * _bevel_sigma(part.bevel, scale)) + 2  # room for the edge blur to fall off
        x, y = max(x - p, 0), max(y - p, 0)
        w, h = min(w + 2 * p, grid.shape[1] - x), min(h + 2 * p, grid.shape[0] - y)
        cover = mask[y:y + h, x:x + w].astype(np.float32) / 255.0
        color = _shade(part, cover, grid, (y, x), sheen)
        c = cover[..., None]
        rgb[y:y + h, x:x + w] = color * c + rgb[y:y + h, x:x + w] * (1.0 - c)
        alpha[y:y + h, x:x + w] = cover + alpha[y:y + h, x:x + w] * (1.0 - cover)
    if ss > 1:
        rgb = cv2.resize(rgb, (w_out, h_out), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, (w_out, h_out), interpolation=cv2.INTER_AREA)
    return _to_rgba(rgb, alpha)


def _to_rgba(rgb_premul: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
    straight = rgb_premul / np.maximum(alpha, 1e-6)[..., None]
    out = np.dstack([np.clip(np.round(straight * 255.0), 0, 255).astype(np.uint8), a8])
    out[a8 == 0, :3] = 0
    ys, xs = np.nonzero(a8)
    y0, y1 = max(ys.min() - _MARGIN_PX, 0), min(ys.max() + 1 + _MARGIN_PX, a8.shape[0])
    x0, x1 = max(xs.min() - _MARGIN_PX, 0), min(xs.max() + 1 + _MARGIN_PX, a8.shape[1])
    return np.ascontiguousarray(out[y0:y1, x0:x1])


# --------------------------------------------------------------------------------------- public API
def _class_name(cls: int | str) -> str:
    if isinstance(cls, str):
        return CLASS_NAMES[class_index(cls)]  # class_index raises a ValueError listing the classes
    if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool):
        if 0 <= int(cls) < len(CLASS_NAMES):
            return CLASS_NAMES[int(cls)]
        raise ValueError(f"class index {cls} is out of range 0..{len(CLASS_NAMES) - 1}; "
                         f"the classes are: {', '.join(CLASS_NAMES)}")
    raise ValueError(f"class must be a class name or index, got {type(cls).__name__}; "
                     f"the classes are: {', '.join(CLASS_NAMES)}")


def render_utensil(cls: int | str, rng: np.random.Generator, px_per_cm: float = PX_PER_CM_DEFAULT) -> np.ndarray:
    """One random instance of a utensil class as a uint8 RGBA sprite (straight alpha, anti-aliased).

    Canonical pose: long axis vertical, working end at the top, tight crop with a transparent margin of
    a few pixels; the height is the utensil's real length times px_per_cm. Every random choice comes from
    rng, so the same generator state gives the same bytes.
    """
    name = _class_name(cls)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    if not (np.isfinite(px_per_cm) and 0.5 <= px_per_cm <= 64.0):
        raise ValueError(f"px_per_cm must be within [0.5, 64], got {px_per_cm}")
    return _rasterize(utensil_parts(name, rng), rng, float(px_per_cm))
