"""Render every utensil class as a sheet of variants, to look at the sprites.

    python -m tools.sprite_sheet --out /tmp/sprites_sheet.png --variants 6

Top: full resolution (8 px/cm) on mid grey. Bottom: the same sprites at the 64x64-scene scale (about
2 px/cm, downscaled with INTER_AREA as the composer does), enlarged with nearest-neighbour so pixels show.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from dualpath.contract import CLASS_NAMES
from dualpath.scenes.sprites import PX_PER_CM_DEFAULT, render_utensil

_GREY = 128
_LABEL_H = 18


def _over_grey(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3].astype(np.float32) * a + _GREY * (1 - a)).astype(np.uint8)


def _downscale(rgba: np.ndarray, factor: float) -> np.ndarray:
    """Scale an RGBA sprite by factor < 1 the way a compositor should: premultiplied, INTER_AREA."""
    h, w = rgba.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    pre = cv2.resize(rgba[..., :3].astype(np.float32) * a, size, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(a[..., 0], size, interpolation=cv2.INTER_AREA)
    rgb = pre / np.maximum(alpha, 1e-6)[..., None]
    return np.dstack([np.clip(rgb, 0, 255), np.clip(alpha * 255, 0, 255)]).round().astype(np.uint8)


def _block(name: str, sprites: list[np.ndarray], gap: int) -> np.ndarray:
    h = max(s.shape[0] for s in sprites)
    w = sum(s.shape[1] for s in sprites) + gap * (len(sprites) + 1)
    w = max(w, 8 * len(name) + 8)
    out = np.full((h + _LABEL_H + gap, w, 3), _GREY, np.uint8)
    x = gap
    for s in sprites:
        out[_LABEL_H + h - s.shape[0]:_LABEL_H + h, x:x + s.shape[1]] = _over_grey(s)
        x += s.shape[1] + gap
    cv2.putText(out, name, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _grid(blocks: list[np.ndarray], cols: int) -> np.ndarray:
    rows = [blocks[i:i + cols] for i in range(0, len(blocks), cols)]
    cw = max(b.shape[1] for b in blocks)
    lines = []
    for row in rows:
        rh = max(b.shape[0] for b in row)
        line = np.full((rh, cw * cols, 3), _GREY, np.uint8)
        for j, b in enumerate(row):
            line[rh - b.shape[0]:, j * cw:j * cw + b.shape[1]] = b
        lines.append(line)
    return np.concatenate(lines)


def build_sheet(variants: int, seed: int, scene_px_per_cm: float, zoom: int) -> tuple[np.ndarray, float]:
    sprites, t = {}, 0.0
    for ci, name in enumerate(CLASS_NAMES):
        row = []
        for v in range(variants):
            rng = np.random.default_rng([seed, ci, v])
            t0 = time.perf_counter()
            row.append(render_utensil(name, rng, PX_PER_CM_DEFAULT))
            t += time.perf_counter() - t0
        sprites[name] = row
    full = _grid([_block(n, s, 6) for n, s in sprites.items()], cols=4)
    small = []
    for n, row in sprites.items():
        scaled = [_downscale(s, scene_px_per_cm / PX_PER_CM_DEFAULT) for s in row]
        big = [cv2.resize(s, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST) for s in scaled]
        small.append(_block(n, big, 6))
    small = _grid(small, cols=5)
    w = max(full.shape[1], small.shape[1])
    full, small = (np.pad(im, ((0, 0), (0, w - im.shape[1]), (0, 0)), constant_values=_GREY) for im in (full, small))
    sheet = np.concatenate([full, np.full((10, w, 3), 60, np.uint8), small])
    return sheet, t / (variants * len(CLASS_NAMES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/sprites_sheet.png"))
    parser.add_argument("--variants", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scene-px-per-cm", type=float, default=2.0, help="scale of a 64x64 scene (~32 cm)")
    parser.add_argument("--zoom", type=int, default=4, help="nearest-neighbour enlargement of the small sprites")
    args = parser.parse_args(argv)
    if args.variants < 1 or args.zoom < 1:
        parser.error("--variants and --zoom must be at least 1")
    sheet, per_sprite = build_sheet(args.variants, args.seed, args.scene_px_per_cm, args.zoom)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}); {per_sprite * 1e3:.2f} ms per sprite")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
