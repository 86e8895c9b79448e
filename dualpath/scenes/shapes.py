"""Geometry of the 20 kitchen utensils: per class, a builder (rng, length in cm) -> list of Parts, in centimetres.

A Part is a union of polygons and strokes (minus holes), a material and a relief (bevel, dish); sprites.py turns
the parts into a shaded RGBA sprite. This module draws no pixels: it only decides shapes, sizes and materials.

Canonical pose: long axis vertical, working end (bowl, blade, tines, head) at the top, y grows downwards
from the tip (y = 0) to the handle end (y = length). Sizes are real, so one px-per-cm factor scales every
class consistently; widths of thin parts are exaggerated a little (about 1.1-1.3x) so they still read in a
64x64 scene at about 2 px/cm.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dualpath.contract import CLASS_NAMES

# Realistic overall length ranges (cm), from retail catalogues of each kind of utensil.
LENGTH_CM: dict[str, tuple[float, float]] = {
    "bottle opener": (14.0, 18.0),
    "bread knife": (31.0, 36.0),
    "can opener": (17.0, 21.0),
    "dessert spoon": (17.0, 19.0),
    "dinner fork": (19.0, 21.0),
    "dinner knife": (22.0, 24.5),
    "fish slice": (30.0, 34.0),
    "kitchen knife": (30.0, 34.0),
    "ladle": (28.0, 33.0),
    "masher": (24.0, 28.0),
    "peeler": (13.0, 16.0),
    "pizza cutter": (19.0, 24.0),
    "potato peeler": (17.0, 20.0),
    "serving spoon": (24.0, 28.0),
    "soup spoon": (17.5, 19.5),
    "spatula": (25.0, 30.0),
    "teaspoon": (12.5, 14.5),
    "tongs": (23.0, 31.0),
    "whisk": (25.0, 30.0),
    "wooden spoon": (28.0, 33.0),
}

# sRGB base colours (0-255).
_PLASTIC = (
    (196, 32, 38), (28, 28, 30), (32, 82, 172), (42, 140, 62), (238, 128, 24), (232, 232, 226),
    (22, 150, 150), (118, 52, 150), (238, 198, 34), (92, 92, 98), (226, 82, 140),
)
_SILICONE = ((214, 52, 48), (48, 120, 200), (70, 170, 90), (240, 150, 40), (40, 40, 44), (120, 190, 200),
             (200, 200, 196), (150, 80, 170), (230, 110, 150))
_WOOD = ((196, 146, 94), (214, 180, 122), (156, 106, 64), (108, 68, 42), (176, 124, 74), (134, 88, 52))
_DARK_HANDLE = ((26, 26, 28), (40, 38, 36), (70, 44, 30), (54, 56, 60))


@dataclass(frozen=True)
class Material:
    kind: str  # "metal" | "plastic" | "wood" | "rubber"
    rgb: tuple[float, float, float]  # base colour, 0-1
    grain_seed: int = 0  # wood only: seeds a grain field shared by all parts of the same material


@dataclass(frozen=True)
class Stroke:
    points: np.ndarray  # (N, 2) centre line in cm
    width: float  # cm
    closed: bool = False


@dataclass(frozen=True)
class Part:
    shapes: tuple  # polygons ((N, 2) arrays, cm) and Strokes, drawn as a union
    material: Material
    bevel: float = 0.1  # radius (cm) of the rounded edge; >= half the width shades a full cylinder
    dish: float = 0.0  # depth (cm) of a concave bowl inside the rounded edge
    holes: tuple = ()  # polygons / Strokes cut out of this part


# --------------------------------------------------------------------------------------- materials
def _metal(rng: np.random.Generator, tone: float | None = None) -> Material:
    v = rng.uniform(0.66, 0.82) if tone is None else tone
    tint = rng.uniform(-0.02, 0.03)  # stainless leans slightly blue
    return Material("metal", (v - tint, v, v + tint))


def _pick(rng: np.random.Generator, palette) -> tuple[float, float, float]:
    base = np.asarray(palette[rng.integers(len(palette))], dtype=np.float64)
    base = np.clip(base * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3), 0, 255)
    return tuple(float(c) / 255.0 for c in base)


def _plastic(rng: np.random.Generator) -> Material:
    return Material("plastic", _pick(rng, _PLASTIC))


def _dark(rng: np.random.Generator) -> Material:
    return Material("plastic", _pick(rng, _DARK_HANDLE))


def _wood(rng: np.random.Generator) -> Material:
    return Material("wood", _pick(rng, _WOOD), int(rng.integers(1 << 31)))


def _handle_material(rng: np.random.Generator, p_metal: float, p_wood: float) -> Material:
    u = rng.random()
    if u < p_metal:
        return _metal(rng)
    return _wood(rng) if u < p_metal + p_wood else _plastic(rng)


# --------------------------------------------------------------------------------------- geometry
def _ellipse(cx: float, cy: float, ax: float, ay: float, t0: float = 0.0, t1: float = 2 * np.pi,
             n: int | None = None) -> np.ndarray:
    # dense enough that no facet of the outline shows in the shading (~12 vertices per cm of arc)
    n = n or max(12, int(12 * max(ax, ay) * (t1 - t0)))
    t = np.linspace(t0, t1, n)
    return np.stack([cx + ax * np.sin(t), cy - ay * np.cos(t)], axis=1)  # t = 0 at the top


def _egg(cy: float, half_len: float, half_w: float, skew: float, cx: float = 0.0) -> np.ndarray:
    """Bowl outline; skew > 0 puts the widest point nearer the top (the tip of a spoon)."""
    t = np.linspace(0, 2 * np.pi, max(48, int(12 * np.pi * (half_len + half_w))), endpoint=False)
    x = half_w * np.sin(t) * (1 + skew * np.cos(t)) / (1 + abs(skew) * 0.5)
    return np.stack([cx + x, cy - half_len * np.cos(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float, r: float = 0.0) -> np.ndarray:
    if r <= 0:
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
    corners = ((x1 - r, y0 + r, 0.0), (x1 - r, y1 - r, 0.5 * np.pi), (x0 + r, y1 - r, np.pi),
               (x0 + r, y0 + r, 1.5 * np.pi))
    arcs = [_ellipse(cx, cy, r, r, a, a + 0.5 * np.pi, 8) for cx, cy, a in corners]
    return np.concatenate(arcs)


def _rod(knots, cap_top: float = 0.0, cap_bottom: float = 1.0, cx: float = 0.0, n: int | None = None) -> np.ndarray:
    """Symmetric outline through (y, half-width) knots (y ascending), smoothstep between knots, with
    elliptical end caps of length cap * half-width (0 = square end)."""
    ys, hw = [], []
    for (y0, w0), (y1, w1) in itertools.pairwise(knots):
        t = np.linspace(0, 1, n or max(4, int(4 * abs(y1 - y0))), endpoint=False)
        s = t * t * (3 - 2 * t)
        ys.append(y0 + (y1 - y0) * t)
        hw.append(w0 + (w1 - w0) * s)
    ys = np.concatenate(ys + [[knots[-1][0]]])
    hw = np.concatenate(hw + [[knots[-1][1]]])
    right = np.stack([cx + hw, ys], axis=1)
    left = np.stack([cx - hw[::-1], ys[::-1]], axis=1)
    parts = []
    if cap_top > 0:
        parts.append(_ellipse(cx, ys[0], hw[0], cap_top * hw[0], 0.0, 0.5 * np.pi)[:-1])
    parts.append(right)
    if cap_bottom > 0:
        # the cap ends at y = last knot, so the outline never reaches past the length it was given
        yc = ys[-1] - cap_bottom * hw[-1]
        right[-1] = (cx + hw[-1], yc)
        parts[-1] = right
        parts.append(_ellipse(cx, yc, hw[-1], cap_bottom * hw[-1], 0.5 * np.pi, 1.5 * np.pi)[1:-1])
        left = left.copy()
        left[0] = (cx - hw[-1], yc)
    parts.append(left)
    if cap_top > 0:
        parts.append(_ellipse(cx, ys[0], hw[0], cap_top * hw[0], 1.5 * np.pi, 2 * np.pi)[1:])
    return np.concatenate(parts)


def _handle(rng: np.random.Generator, y0: float, y1: float, w0: float, w1: float, material: Material,
            style: str | None = None, bevel: float | None = None) -> list[Part]:
    """Handle from y0 (joins the working end) to y1 (its end): plain, bulb-ended or with a hanging hole."""
    style = style or ("plain", "rounded", "hole")[rng.integers(3)]
    length = y1 - y0
    if style == "rounded":
        knots = [(y0, w0), (y0 + 0.55 * length, w1 * 0.85), (y1 - 0.15 * length, w1 * 1.12), (y1, w1 * 1.05)]
    else:
        knots = [(y0, w0), (y0 + 0.6 * length, w1), (y1, w1)]
    outline = _rod(knots, cap_bottom=rng.uniform(0.6, 1.0))
    holes = ()
    if style == "hole" and w1 > 0.45:
        r = min(0.38, 0.45 * w1)
        holes = (_ellipse(0.0, y1 - w1 - r * 0.6, r, r, n=24),)
    bevel = max(w0, w1) * 1.2 if bevel is None else bevel
    return [Part((outline,), material, bevel=bevel, holes=holes)]


# --------------------------------------------------------------------------------------- spoons
def _spoon(rng: np.random.Generator, length: float, bowl_len: float, bowl_w: float, depth: float,
           skew: float, material: Material | None = None) -> list[Part]:
    metal = material or _metal(rng)
    hl, hw = bowl_len / 2, bowl_w / 2
    neck_y = bowl_len + 0.06 * length
    neck_w = rng.uniform(0.2, 0.26) * (length / 17) ** 0.5
    end_w = rng.uniform(0.48, 0.62) * (length / 17) ** 0.5
    handle = _rod([(bowl_len * 0.75, hw * 0.45), (neck_y, neck_w), (length - 0.3 * (length - bowl_len), end_w),
                   (length, end_w * 0.95)], cap_bottom=rng.uniform(0.7, 1.1))
    parts = [Part((handle,), metal, bevel=0.12), Part((_egg(hl, hl, hw, skew),), metal, bevel=0.1, dish=depth)]
    if rng.random() < 0.25:  # plastic- or wood-handled variant
        grip_y = neck_y + rng.uniform(0.15, 0.3) * (length - neck_y)
        parts += _handle(rng, grip_y, length, end_w * 0.75, end_w * 1.12, _handle_material(rng, 0.0, 0.35),
                         style="plain")
    return parts


def _teaspoon(rng, length):
    bl = rng.uniform(3.9, 4.4)
    return _spoon(rng, length, bl, bl / rng.uniform(1.55, 1.75) * 1.1, rng.uniform(0.3, 0.45), rng.uniform(0.1, 0.22))


def _dessert_spoon(rng, length):
    bl = rng.uniform(5.3, 5.9)
    return _spoon(rng, length, bl, bl / rng.uniform(1.7, 1.85) * 1.08, rng.uniform(0.4, 0.55), rng.uniform(0.1, 0.2))


def _soup_spoon(rng, length):
    d = rng.uniform(4.7, 5.2)
    return _spoon(rng, length, d, d / rng.uniform(0.95, 1.02), rng.uniform(0.5, 0.65), rng.uniform(0.0, 0.06))


def _serving_spoon(rng, length):
    bl = rng.uniform(7.6, 8.6)
    return _spoon(rng, length, bl, bl / rng.uniform(1.5, 1.65) * 1.05, rng.uniform(1.0, 1.3), rng.uniform(0.08, 0.18))


def _wooden_spoon(rng, length):
    wood = _wood(rng)
    bl = rng.uniform(6.0, 7.5)
    bw = bl / rng.uniform(1.3, 1.55)
    hw0, hw1 = rng.uniform(0.55, 0.65), rng.uniform(0.6, 0.8)
    handle = _rod([(bl * 0.7, bw * 0.22), (bl + 1.0, hw0), (length, hw1)], cap_bottom=rng.uniform(0.6, 1.0))
    holes = (_ellipse(0.0, length - hw1 - 0.45, 0.32, 0.32, n=24),) if rng.random() < 0.25 else ()
    return [Part((handle,), wood, bevel=0.6, holes=holes),
            Part((_egg(bl / 2, bl / 2, bw / 2, rng.uniform(0.0, 0.12)),), wood, bevel=0.25, dish=0.35)]


def _ladle(rng, length):
    metal = _metal(rng)
    d = rng.uniform(8.0, 9.5)
    r = d / 2
    hook = rng.random() < 0.6
    end_y = length - (1.3 if hook else 0.0)
    end_w = rng.uniform(0.75, 0.95)
    handle = _rod([(d - 0.6, 0.42), (d + 2.0, 0.3), (end_y - 5.0, end_w * 0.8), (end_y, end_w)],
                  cap_bottom=0.0 if hook else 0.9)
    parts = [Part((handle,), metal, bevel=0.2)]
    if rng.random() < 0.4:  # plastic handle sleeve
        parts += _handle(rng, end_y - rng.uniform(9, 12), end_y, 0.6, end_w * 1.15, _handle_material(rng, 0, 0.2),
                         style="plain")
    if hook:
        t = np.linspace(0.0, np.pi * 1.15, 14)
        hr = 0.65
        side = 1.0 if rng.random() < 0.5 else -1.0
        pts = np.stack([side * (hr - hr * np.cos(t)), end_y - 0.1 + (hr - 0.15) * np.sin(t)], axis=1)
        parts.append(Part((Stroke(pts, 0.5),), metal, bevel=0.25))
    parts.append(Part((_ellipse(0.0, r, r, r),), metal, bevel=0.3, dish=2.2 * rng.uniform(0.9, 1.1)))
    return parts


# --------------------------------------------------------------------------------------- cutlery
def _dinner_fork(rng, length):
    metal = _metal(rng)
    head_len = rng.uniform(5.8, 6.6)
    tine_len = head_len * rng.uniform(0.55, 0.62)
    hw = rng.uniform(1.2, 1.35)
    neck_w = rng.uniform(0.22, 0.28)
    end_w = rng.uniform(0.5, 0.62)
    head = _rod([(0.0, hw * 0.96), (tine_len, hw), (head_len, neck_w * 1.3)], cap_top=0.0, cap_bottom=0.0)
    gap = hw * 2 * rng.uniform(0.1, 0.13)
    tine = (2 * hw - 3 * gap) / 4
    holes = []
    for i in range(1, 4):
        x = -hw + i * tine + (i - 0.5) * gap
        holes.append(_rod([(-0.5, gap / 2), (tine_len, gap / 2)], cap_bottom=1.0, cx=x, n=2))
    # outer tine tips: chamfer the two top corners so the tines look pointed-rounded
    holes += [np.array([[-hw - 0.2, -0.2], [-hw + tine * 0.45, -0.2], [-hw - 0.2, 0.6]]),
              np.array([[hw + 0.2, -0.2], [hw - tine * 0.45, -0.2], [hw + 0.2, 0.6]])]
    handle = _rod([(head_len - 0.3, neck_w * 1.3), (head_len + 1.5, neck_w), (length - 0.3 * (length - head_len), end_w),
                   (length, end_w * 0.95)], cap_bottom=rng.uniform(0.7, 1.1))
    parts = [Part((handle,), metal, bevel=0.12), Part((head,), metal, bevel=0.1, holes=tuple(holes))]
    if rng.random() < 0.25:
        parts += _handle(rng, length - 0.55 * (length - head_len), length, end_w * 0.8, end_w * 1.12,
                         _handle_material(rng, 0.0, 0.35), style="plain")
    return parts


def _blade_outline(length: float, y_heel: float, x_spine: float, x_edge: float, tip: str, rng) -> np.ndarray:
    """Blade from y = 0 (tip) to y_heel with its spine on the left and the cutting edge on the right."""
    w = x_edge - x_spine
    if tip == "round":  # dinner knife: spine sweeps round into the edge
        r = w
        arc = _ellipse(x_edge - r, r, r, r, 1.5 * np.pi, 2.5 * np.pi, 16)  # left -> top -> right
        arc[:, 0] = np.maximum(arc[:, 0], x_spine)
        return np.concatenate([[[x_spine, y_heel]], arc[4:], [[x_edge, y_heel]]])
    # pointed chef's knife: the spine runs nearly straight then drops to the tip, the edge sweeps up from
    # the heel through a long belly, so the blade tapers all the way (a triangle, not a strip)
    tip_x = x_spine + w * rng.uniform(0.1, 0.2)
    drop = length * rng.uniform(0.15, 0.22)
    belly = length * rng.uniform(0.55, 0.7)
    t = np.linspace(0, 1, 14)
    spine = np.stack([x_spine + 0.06 * w * (1 - t) + (tip_x - x_spine - 0.06 * w) * t ** 2, drop * (1 - t)], axis=1)
    edge = np.stack([tip_x + (x_edge - tip_x) * (1 - (1 - t) ** 2.2), belly * t], axis=1)
    return np.concatenate([[[x_spine, y_heel]], spine, edge[1:], [[x_edge, y_heel]]])


def _blunt_top(x0: float, x1: float, r: float) -> np.ndarray:
    left = _ellipse(x0 + r, r, r, r, 1.5 * np.pi, 2 * np.pi, 8)
    right = _ellipse(x1 - r, r, r, r, 0.0, 0.5 * np.pi, 8)
    return np.concatenate([left, right])


def _serrate(p0, p1, pitch: float, depth: float) -> np.ndarray:
    """Scalloped edge from p0 to p1, scallops cut towards -x."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    n = max(2, int(np.linalg.norm(p1 - p0) / pitch))
    t = np.linspace(0, 1, n * 6 + 1)
    pts = p0 + (p1 - p0) * t[:, None]
    pts[:, 0] -= depth * np.abs(np.sin(np.pi * n * t))
    return pts


def _dinner_knife(rng, length):
    metal = _metal(rng)
    blade_len = length * rng.uniform(0.44, 0.5)
    w = rng.uniform(1.9, 2.25)  # ~1.15x real
    xs, xe = -0.45 * w, 0.55 * w
    blade = _blade_outline(blade_len, blade_len, xs, xe, "round", rng)
    bolster_y = blade_len + rng.uniform(0.8, 1.4)
    neck = _rod([(blade_len - 0.4, 0.5 * w), (blade_len + 0.3, 0.3), (bolster_y, 0.36)], cap_bottom=0.0)
    end_w = rng.uniform(0.75, 0.95)
    parts = [Part((blade, neck), metal, bevel=0.06)]
    parts.append(_edge_band(rng, blade, metal, 0.3, 1.12))
    if rng.random() < 0.55:  # one-piece stainless, hollow rounded handle
        parts += _handle(rng, bolster_y - 0.2, length, 0.4, end_w, metal, style=("plain", "rounded")[rng.integers(2)],
                         bevel=0.5)
    else:
        parts += _handle(rng, bolster_y, length, end_w * 0.8, end_w, _handle_material(rng, 0.0, 0.45), style="plain")
        if rng.random() < 0.6:
            parts += _rivets(rng, bolster_y, length)
    return parts


def _edge_band(rng, blade: np.ndarray, steel: Material, width: float, tone: float) -> Part:
    """The ground cutting edge: the blade minus itself shifted towards the spine, in a different tone."""
    v = min(0.95, float(np.mean(steel.rgb)) * tone)
    return Part((blade,), _metal(rng, tone=v), bevel=0.04, holes=(blade - (width, 0.0),))


def _rivets(rng, y0: float, y1: float, n: int = 3) -> list[Part]:
    metal = _metal(rng, tone=rng.uniform(0.75, 0.88))
    ys = np.linspace(y0 + 0.18 * (y1 - y0), y1 - 0.2 * (y1 - y0), n)
    r = rng.uniform(0.2, 0.26)
    return [Part(tuple(_ellipse(0.0, y, r, r, n=16) for y in ys), metal, bevel=r)]


def _bread_knife(rng, length):
    metal = _metal(rng)
    handle_len = rng.uniform(11.0, 13.0)
    blade_len = length - handle_len - 0.6
    w = rng.uniform(2.5, 3.0)
    xs, xe = -0.45 * w, 0.55 * w
    r = w * rng.uniform(0.25, 0.55)
    tip = _blunt_top(xs, xe, r) if rng.random() < 0.6 else _ellipse(xe - w / 2 * 1.0, w / 2, w / 2, w / 2,
                                                                      1.5 * np.pi, 2.5 * np.pi, 16)
    serr = _serrate((xe, tip[-1, 1] + 0.3), (xe, blade_len), rng.uniform(0.55, 0.75), rng.uniform(0.16, 0.22))
    blade = np.concatenate([[[xs, blade_len + 0.6]], tip, serr, [[xe - 0.4, blade_len + 0.6]]])
    parts = [Part((blade,), metal, bevel=0.06), _edge_band(rng, blade, metal, 0.45, 0.85)]
    y0 = length - handle_len
    hw = rng.uniform(1.05, 1.3)
    mat = _wood(rng) if rng.random() < 0.5 else (_dark(rng) if rng.random() < 0.7 else _plastic(rng))
    parts += _handle(rng, y0, length, hw * 0.9, hw, mat, style="plain", bevel=0.9 * hw)
    if mat.kind == "wood" and rng.random() < 0.7:
        parts += _rivets(rng, y0, length, n=int(rng.integers(2, 4)))
    return parts


def _kitchen_knife(rng, length):
    steel = _metal(rng)
    handle_len = rng.uniform(11.5, 13.0)
    bolster = rng.uniform(0.8, 1.3)
    blade_len = length - handle_len - bolster
    w = rng.uniform(4.3, 5.2)
    xs, xe = -0.3 * w, 0.7 * w
    blade = _blade_outline(blade_len, blade_len + 0.2, xs, xe, "pointed", rng)
    # the heel turns in towards the bolster
    blade = np.concatenate([blade, [[xe - 0.5, blade_len + 0.4], [xe - 1.2, blade_len + 0.5]]])
    parts = [Part((blade,), steel, bevel=0.08), _edge_band(rng, blade, steel, rng.uniform(0.5, 0.8), 1.15)]
    y_b = blade_len
    hw = rng.uniform(1.15, 1.35)
    parts.append(Part((_rod([(y_b - 0.3, 1.0), (y_b + bolster, hw * 0.85)], cap_bottom=0.0),), steel, bevel=0.5))
    parts += _handle(rng, y_b + bolster, length, hw * 0.85, hw * rng.uniform(0.95, 1.1), _dark(rng),
                     style="plain", bevel=hw)
    parts += _rivets(rng, y_b + bolster, length, n=3)
    return parts


# --------------------------------------------------------------------------------------- turners
def _fish_slice(rng, length):
    nylon = rng.random() < 0.35
    head_mat = _dark(rng) if nylon else _metal(rng)
    head_len = rng.uniform(9.0, 11.0)
    fw, bw = rng.uniform(6.8, 8.0), rng.uniform(3.6, 4.6)
    slant = rng.uniform(-0.6, 0.6)
    r = rng.uniform(0.5, 1.0)
    head = np.array([[-fw / 2, max(0.0, slant) * 2], [fw / 2, max(0.0, -slant) * 2], [bw / 2, head_len],
                     [-bw / 2, head_len]])
    head = np.concatenate([_corner(head, i, r) for i in range(len(head))])
    head[:, 1] -= head[:, 1].min()
    n_slots = int(rng.integers(3, 6))
    slot_w = rng.uniform(0.35, 0.5)
    span = bw * 0.8
    holes = tuple(_rod([(1.6, slot_w / 2), (head_len - 1.6, slot_w / 2)], cap_top=1.0, cap_bottom=1.0,
                       cx=x, n=2) for x in np.linspace(-span / 2, span / 2, n_slots))
    neck_end = head_len + rng.uniform(2.5, 3.5)
    neck = _rod([(head_len - 0.5, bw / 2 * 0.5), (neck_end, 0.45)], cap_bottom=0.0)
    parts = [Part((neck,), head_mat, bevel=0.2), Part((head,), head_mat, bevel=0.1, holes=holes)]
    hmat = head_mat if nylon and rng.random() < 0.6 else _handle_material(rng, 0.25, 0.3)
    parts += _handle(rng, neck_end - 0.3, length, 0.55, rng.uniform(0.8, 1.0), hmat)
    return parts


def _spatula(rng, length):
    sil = Material("rubber", _pick(rng, _SILICONE))
    head_len = rng.uniform(8.5, 10.5)
    w = rng.uniform(5.0, 6.0)
    r_big, r_small = rng.uniform(1.6, 2.4), rng.uniform(0.4, 0.9)
    if rng.random() < 0.5:
        r_big, r_small = r_small, r_big
    head = np.array([[-w / 2, 0.0], [w / 2, 0.0], [w / 2, head_len - 1.5], [0.9, head_len + 0.6],
                     [-0.9, head_len + 0.6], [-w / 2, head_len - 1.5]])
    radii = (r_big, r_small, 0.8, 0.3, 0.3, 0.8)
    head = np.concatenate([_corner(head, i, r) for i, r in enumerate(radii)])
    head[:, 1] -= head[:, 1].min()
    mat = sil if rng.random() < 0.5 else _handle_material(rng, 0.15, 0.45)
    hw = rng.uniform(0.55, 0.75)
    parts = _handle(rng, head_len - 0.5, length, hw * 0.85, hw, mat, bevel=hw)
    parts.append(Part((head,), sil, bevel=0.45))
    return parts


def _corner(poly: np.ndarray, i: int, r: float, n: int = 7) -> np.ndarray:
    """Vertex i of a polygon rounded with radius ~r (a quadratic Bezier between points r from the vertex)."""
    k = len(poly)
    p, a, b = poly[i], poly[i - 1], poly[(i + 1) % k]
    la, lb = np.linalg.norm(a - p), np.linalg.norm(b - p)
    r = min(r, 0.49 * la, 0.49 * lb)
    p0, p1 = p + (a - p) / la * r, p + (b - p) / lb * r
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p + t ** 2 * p1


# --------------------------------------------------------------------------------------- gadgets
def _masher(rng, length):
    steel = _metal(rng)
    w = rng.uniform(8.0, 9.5)
    handle_len = rng.uniform(10.5, 12.5)
    hw = rng.uniform(1.1, 1.4)
    y_h = length - handle_len
    parts = []
    if rng.random() < 0.55:  # zigzag wire head, side view: wavy wire, two struts to the shaft
        amp = rng.uniform(1.2, 1.6)
        n = int(rng.integers(3, 5))
        sharp = rng.uniform(0.4, 1.0)  # 0: sine wave, 1: zigzag
        xs = np.linspace(-w / 2, w / 2, 16 * n + 1)
        tri = np.abs(((xs + w / 2) / w * n) % 1.0 - 0.5) * 2  # 1 at the ends, 0 mid-wave
        wave = sharp * tri + (1 - sharp) * (0.5 + 0.5 * np.cos(2 * np.pi * (xs + w / 2) / w * n))
        zig = np.stack([xs, 0.25 + amp * (1 - wave)], axis=1)
        zig[:, 1] = amp + 0.25 - zig[:, 1] + 0.25  # wire ends low, crests at the top
        y_j = rng.uniform(5.5, 7.0)
        struts = Stroke(np.array([[-w / 2 + 0.1, amp + 0.2], [-0.4, y_j], [0.4, y_j], [w / 2 - 0.1, amp + 0.2]]), 0.45)
        parts += [Part((Stroke(zig, 0.5), struts), steel, bevel=0.25),
                  Part((_rod([(y_j - 0.4, 0.35), (y_h + 0.5, 0.35)], cap_bottom=0.0),), steel, bevel=0.35)]
    else:  # perforated plate seen face-on
        ph = rng.uniform(4.2, 5.5)
        plate = _rect(-w / 2, 0.0, w / 2, ph, rng.uniform(0.8, 2.0)) if rng.random() < 0.6 else \
            _ellipse(0.0, ph / 2, w / 2, ph / 2)
        hr = rng.uniform(0.28, 0.38)
        step = hr * rng.uniform(2.6, 3.2)
        holes = []
        for yy in np.arange(ph / 2 - step * 3, ph / 2 + step * 3.1, step):
            for xx in np.arange(-w / 2, w / 2 + 1e-6, step) + (step / 2 if round((yy - ph / 2) / step) % 2 else 0):
                if ((xx / (w / 2 - 0.5)) ** 2 + ((yy - ph / 2) / (ph / 2 - 0.45)) ** 2) < 0.8:
                    holes.append(_ellipse(xx, yy, hr, hr, n=12))
        parts += [Part((_rod([(ph - 0.3, 0.9), (ph + 1.2, 0.4), (y_h + 0.5, 0.42)], cap_bottom=0.0),), steel,
                       bevel=0.4),
                  Part((plate,), steel, bevel=0.15, holes=tuple(holes))]
    parts += _handle(rng, y_h, length, hw * 0.8, hw, _handle_material(rng, 0.25, 0.3), bevel=hw)
    return parts


def _peeler(rng, length):
    frame = _plastic(rng) if rng.random() < 0.65 else _metal(rng)
    blade = _metal(rng, tone=rng.uniform(0.72, 0.85))
    y_fork = rng.uniform(4.8, 5.8)
    half = rng.uniform(2.6, 3.2)
    aw = rng.uniform(0.45, 0.6)
    arms = Stroke(np.array([[-half, aw / 2], [-half, 1.2], [-half * 0.6, y_fork - 1.2], [0.0, y_fork],
                            [half * 0.6, y_fork - 1.2], [half, 1.2], [half, aw / 2]]), aw)
    hw = rng.uniform(0.95, 1.25)
    parts = _handle(rng, y_fork - 0.5, length, aw * 0.9, hw, frame, style=("plain", "hole")[rng.integers(2)], bevel=hw)
    parts.append(Part((arms,), frame, bevel=aw / 2))
    bh = rng.uniform(0.8, 1.1)
    blade_poly = _rect(-half + aw * 0.3, 0.55, half - aw * 0.3, 0.55 + bh, 0.1)
    slot = _rect(-half + aw * 0.9, 0.55 + bh * 0.45, half - aw * 0.9, 0.55 + bh * 0.62)
    parts.append(Part((blade_poly,), blade, bevel=0.15, holes=(slot,)))
    return parts


def _potato_peeler(rng, length):
    steel = _metal(rng)
    blade_len = rng.uniform(6.5, 8.0)
    bw = rng.uniform(1.6, 2.0)
    if rng.random() < 0.7:  # fixed Lancashire blade: pointed, slotted down the middle
        tip = rng.uniform(1.2, 2.0)
        blade = _rod([(0.0, 0.12), (tip, bw / 2), (blade_len, bw / 2 * 0.8)], cap_bottom=0.0)
        slot = _rod([(tip * 0.8, 0.12), (tip + 0.5, 0.17), (blade_len - 1.0, 0.15)], cap_bottom=1.0)
        parts = [Part((blade,), steel, bevel=0.08, holes=(slot,))]
    else:  # in-line swivel: frame with a window and a blade strip
        frame = _rod([(0.0, bw / 2), (blade_len, bw / 2 * 0.75)], cap_top=0.8, cap_bottom=0.0)
        window = _rod([(0.9, bw / 2 - 0.3), (blade_len - 0.6, bw / 2 * 0.75 - 0.3)], cap_top=0.6, cap_bottom=0.6)
        strip = _rect(-0.22, 0.8, 0.1, blade_len - 0.5)
        parts = [Part((frame,), steel, bevel=0.12, holes=(window,)),
                 Part((strip,), _metal(rng, tone=0.85), bevel=0.08, holes=(_rect(-0.08, 1.2, 0.02, blade_len - 1.0),))]
    ferrule_y = blade_len + rng.uniform(0.8, 1.4)
    hw = rng.uniform(0.9, 1.15)
    parts.append(Part((_rod([(blade_len - 0.4, bw / 2 * 0.7), (ferrule_y, hw * 0.78)], cap_bottom=0.0),), steel,
                      bevel=0.5))
    mat = _wood(rng) if rng.random() < 0.5 else _plastic(rng)
    parts += _handle(rng, ferrule_y - 0.1, length, hw * 0.8, hw, mat, style="plain", bevel=hw)
    if rng.random() < 0.4:  # string / ring bands of the classic Lancashire handle
        ys = np.linspace(ferrule_y + 1.0, length - 1.2, int(rng.integers(2, 5)))
        bands = tuple(_rect(-hw * 1.02, y - 0.15, hw * 1.02, y + 0.15) for y in ys)
        parts.append(Part(bands, _dark(rng), bevel=0.1))
    return parts


def _pizza_cutter(rng, length):
    steel = _metal(rng)
    r = rng.uniform(3.3, 4.8)
    hub_r = rng.uniform(0.7, 1.0)
    parts = [Part((_ellipse(0.0, r, r, r),), steel, bevel=0.45)]
    parts.append(Part((_ellipse(0.0, r, r - 0.55, r - 0.55),), _metal(rng, tone=float(np.mean(steel.rgb)) * 0.93),
                      bevel=0.05))
    handle_len = min(length - 2 * r - 1.0, rng.uniform(10.0, 12.5))
    y_h = length - handle_len
    fork_mat = steel if rng.random() < 0.6 else _dark(rng)
    fork = _rod([(r - hub_r * 1.3, hub_r * 1.25), (r + hub_r, hub_r * 1.1), (y_h + 0.4, 0.55)], cap_top=1.0,
                cap_bottom=0.0)
    parts.append(Part((fork,), fork_mat, bevel=0.3))
    parts.append(Part((_ellipse(0.0, r, hub_r * 0.6, hub_r * 0.6, n=24),), _metal(rng, tone=0.85), bevel=0.4))
    hw = rng.uniform(1.0, 1.3)
    parts += _handle(rng, y_h, length, hw * 0.75, hw, _handle_material(rng, 0.2, 0.3), bevel=hw)
    if rng.random() < 0.4:  # thumb guard
        parts.append(Part((_rect(-hw * 1.4, y_h - 0.2, hw * 1.4, y_h + 0.5, 0.3),), fork_mat, bevel=0.3))
    return parts


def _bottle_opener(rng, length):
    steel = _metal(rng)
    if rng.random() < 0.5:  # flat bar ("speed opener") with a mouth and a thumb hole
        w = rng.uniform(3.6, 4.2)
        bar = _rect(-w / 2, 0.0, w / 2, length, rng.uniform(0.8, 1.6))
        mw, mh = w * 0.55, rng.uniform(1.6, 2.0)
        mouth = np.concatenate([_rect(-mw / 2, 1.0, mw / 2, 1.0 + mh, 0.6)])
        thumb = _ellipse(0.0, length - w / 2, w * 0.28, w * 0.28)
        return [Part((bar,), steel, bevel=0.1, holes=(mouth, thumb))]
    hw = rng.uniform(2.0, 2.4)
    head_len = rng.uniform(4.5, 5.5)
    head = _rod([(0.0, hw), (head_len * 0.7, hw), (head_len + 1.2, 0.8)], cap_top=0.9, cap_bottom=0.0)
    mouth = _rect(-hw * 0.55, head_len * 0.15, hw * 0.55, head_len * 0.48, 0.4)
    lip = np.array([[-hw * 0.25, head_len * 0.15 - 0.05], [hw * 0.25, head_len * 0.15 - 0.05],
                    [0.0, head_len * 0.28]])
    parts = _handle(rng, head_len + 0.6, length, 0.75, rng.uniform(0.95, 1.2), _handle_material(rng, 0.15, 0.45))
    head_part = Part((head,), steel, bevel=0.15, holes=(mouth,))
    return parts + [head_part, Part((lip,), steel, bevel=0.05)]


def _can_opener(rng, length):
    steel = _metal(rng)
    hw = rng.uniform(1.5, 1.8)
    head_len = rng.uniform(4.0, 4.8)
    body = _rect(-hw, 0.0, hw, head_len, rng.uniform(0.5, 1.0))
    parts = [Part((body,), steel, bevel=0.3)]
    gear_r = rng.uniform(0.9, 1.1)
    gear_c = (-0.2, head_len * 0.42)
    k = 16
    ang = np.linspace(0, 2 * np.pi, 4 * k, endpoint=False)
    rad = gear_r * np.where((np.arange(4 * k) // 2) % 2 == 0, 1.0, 0.82)
    gear = np.stack([gear_c[0] + rad * np.sin(ang), gear_c[1] - rad * np.cos(ang)], axis=1)
    parts.append(Part((gear,), _metal(rng, tone=0.6), bevel=0.2))
    parts.append(Part((_ellipse(gear_c[0], gear_c[1], 0.3, 0.3, n=16),), _metal(rng, tone=0.85), bevel=0.3))
    # butterfly key on the side of the head
    kx = hw + rng.uniform(1.6, 2.0)
    ky = head_len * 0.45
    key_mat = steel if rng.random() < 0.6 else _plastic(rng)
    wing = rng.uniform(1.6, 2.1)
    key = (_rect(hw - 0.2, ky - 0.3, kx, ky + 0.3),
           _ellipse(kx, ky - wing * 0.55, 0.6, wing * 0.6, n=24), _ellipse(kx, ky + wing * 0.55, 0.6, wing * 0.6, n=24))
    parts.append(Part(key, key_mat, bevel=0.3))
    # pliers-like handles, slightly apart at the far end
    grip = _plastic(rng) if rng.random() < 0.8 else steel
    spread = rng.uniform(0.9, 1.5)
    aw = rng.uniform(0.55, 0.7)
    y_g = head_len + rng.uniform(2.5, 4.0)
    for side in (-1.0, 1.0):
        x0, x1 = side * 0.65, side * (0.65 + spread)
        arm = Stroke(np.array([[x0, head_len - 0.5], [x1 * 0.9, y_g], [x1, length - aw]]), aw)
        parts.append(Part((arm,), steel, bevel=aw / 2))
        gx = np.array([x1 * 0.9 + (x1 - x1 * 0.9) * 0.05, x1])
        sleeve = _rod([(y_g, aw * 0.75), (y_g + 1.0, aw * 0.95), (length, aw * 0.95)], cap_bottom=0.9)
        sleeve[:, 0] += np.interp(sleeve[:, 1], [y_g, length], gx)
        parts.append(Part((sleeve,), grip, bevel=aw))
    return parts


def _tongs(rng, length):
    steel = _metal(rng)
    sep = rng.uniform(4.0, 6.0)
    aw = rng.uniform(1.3, 1.7)
    head_len = rng.uniform(4.0, 5.0)
    tip = Material("rubber", _pick(rng, _SILICONE)) if rng.random() < 0.4 else steel
    y_hinge = length - rng.uniform(1.4, 1.8)
    parts = []
    for side in (-1.0, 1.0):
        top = np.array([side * sep / 2, head_len * 0.8])
        bot = np.array([side * aw * 0.55, y_hinge])
        d = (bot - top) / np.linalg.norm(bot - top)
        nrm = np.array([d[1], -d[0]]) * aw / 2
        arm = np.array([top + nrm, bot + nrm * 0.8, bot - nrm * 0.8, top - nrm])
        parts.append(Part((arm,), steel, bevel=0.25))
        hx = side * sep / 2
        hh = aw * rng.uniform(0.75, 0.9)
        scallop = _serrate((hx - side * hh, hh), (hx - side * hh, head_len + 0.3), 0.8, 0.3 * side)
        head = np.concatenate([[[hx + side * hh, head_len + 0.3]], _half_top(hx, hh, side), scallop])
        parts.append(Part((head,), tip, bevel=0.25))
    hinge = _rod([(y_hinge - 1.5, aw * 0.95), (length, aw * 1.15)], cap_bottom=1.0)
    parts.append(Part((hinge,), steel, bevel=0.5))
    if rng.random() < 0.5:  # pull ring lock
        parts.append(Part((Stroke(_ellipse(0.0, y_hinge - 0.8, aw * 1.1, 0.7, n=24), 0.22, closed=True),),
                          _metal(rng, tone=0.85), bevel=0.11))
    return parts


def _half_top(hx: float, hh: float, side: float) -> np.ndarray:
    """Outer side and rounded top of a tong head, from the outer side over the top to the inner side."""
    t = np.linspace(0.0, np.pi, 12)
    return np.stack([hx + side * hh * np.cos(t), hh - hh * np.sin(t)], axis=1)


def _whisk(rng, length):
    steel = _metal(rng)
    handle_len = rng.uniform(10.0, 12.5)
    y_j = length - handle_len
    w = rng.uniform(6.0, 7.5)
    wire = rng.uniform(0.2, 0.26)  # ~1.2x a real 1.8 mm wire, so the balloon survives downscaling
    n = int(rng.integers(3, 6))
    a = rng.uniform(0.6, 0.85)  # pulls the widest point towards the top
    u = np.linspace(0.0, 1.0, 40)
    prof = np.sin(np.pi * u ** a) ** 0.55
    hw = 0.45 * (1 - u) ** 3 + (w / 2 - wire / 2) * prof
    ys = y_j - u * (y_j - wire / 2)
    loops = []
    for c in np.linspace(1.0, rng.uniform(0.15, 0.3), n):  # loop planes seen at decreasing angles
        pts = np.concatenate([np.stack([hw * c, ys], axis=1), np.stack([-hw[::-1] * c, ys[::-1]], axis=1)])
        loops.append(Stroke(pts, wire))
    parts = [Part(tuple(loops), steel, bevel=wire / 2)]
    ferrule = _rod([(y_j - 1.2, 0.45), (y_j + 0.8, 0.7)], cap_top=0.5, cap_bottom=0.0)
    parts.append(Part((ferrule,), steel, bevel=0.5))
    hwid = rng.uniform(0.9, 1.25)
    parts += _handle(rng, y_j + 0.6, length, 0.7, hwid, _handle_material(rng, 0.45, 0.15), bevel=hwid)
    return parts


_BUILDERS: dict[str, Callable[[np.random.Generator, float], list[Part]]] = {
    "bottle opener": _bottle_opener,
    "bread knife": _bread_knife,
    "can opener": _can_opener,
    "dessert spoon": _dessert_spoon,
    "dinner fork": _dinner_fork,
    "dinner knife": _dinner_knife,
    "fish slice": _fish_slice,
    "kitchen knife": _kitchen_knife,
    "ladle": _ladle,
    "masher": _masher,
    "peeler": _peeler,
    "pizza cutter": _pizza_cutter,
    "potato peeler": _potato_peeler,
    "serving spoon": _serving_spoon,
    "soup spoon": _soup_spoon,
    "spatula": _spatula,
    "teaspoon": _teaspoon,
    "tongs": _tongs,
    "whisk": _whisk,
    "wooden spoon": _wooden_spoon,
}
assert set(_BUILDERS) == set(CLASS_NAMES) == set(LENGTH_CM), "every class needs a builder and a length range"


def utensil_parts(name: str, rng: np.random.Generator) -> list[Part]:
    """The parts of one random instance of class `name`: its length first, then its builder's draws from rng
    (the order every sprite's bytes depend on)."""
    length = float(rng.uniform(*LENGTH_CM[name]))
    return _BUILDERS[name](rng, length)
