"""The utensil geometry (shapes.py) on its own, in centimetres, before any pixel is drawn."""
import numpy as np
import pytest

from dualpath.contract import CLASS_NAMES
from dualpath.scenes import shapes, sprites
from dualpath.scenes.shapes import LENGTH_CM, Part, Stroke, utensil_parts


def _extent(parts: list[Part]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest (x, y) in cm that the parts' outlines and strokes (with their width) reach."""
    lo, hi = [], []
    for shape in (s for p in parts for s in p.shapes):
        pad = shape.width / 2 if isinstance(shape, Stroke) else 0.0
        pts = shape.points if isinstance(shape, Stroke) else shape
        lo.append(pts.min(0) - pad)
        hi.append(pts.max(0) + pad)
    return np.min(lo, axis=0), np.max(hi, axis=0)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_geometry_ends_at_its_drawn_length_along_the_vertical_axis(name):
    for seed in range(5):
        length = np.random.default_rng(seed).uniform(*LENGTH_CM[name])  # utensil_parts' first draw
        lo, hi = _extent(utensil_parts(name, np.random.default_rng(seed)))
        # the handle end is at y = length (a ladle's hook stops a little short); nothing reaches past it
        assert length - 1.0 < hi[1] < length + 0.02, (name, seed, hi[1], length)
        assert hi[1] - lo[1] > hi[0] - lo[0], f"{name} should lie along the vertical axis"


def test_sprites_still_exports_the_length_ranges():
    assert sprites.LENGTH_CM is shapes.LENGTH_CM
