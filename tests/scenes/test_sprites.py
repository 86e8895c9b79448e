import itertools

import cv2
import numpy as np
import pytest

from dualpath.contract import CLASS_NAMES
from dualpath.scenes.sprites import LENGTH_CM, PX_PER_CM_DEFAULT, render_utensil

MARGIN = 3  # the transparent border render_utensil leaves around the object
# Below the smallest scale scenes draw at (64 px over SceneConfig.field_of_view_cm, times the lower scale jitter),
# so what tells the classes apart here survives in any scene.
SCENE_PX_PER_CM = 2.0
# Classes whose working end is clearly the widest part of the silhouette.
WIDE_HEADED = ("dessert spoon", "fish slice", "ladle", "masher", "pizza cutter", "serving spoon", "soup spoon",
               "spatula", "teaspoon", "whisk", "wooden spoon", "dinner fork")
LOOK_ALIKES = (("teaspoon", "dessert spoon"), ("dessert spoon", "soup spoon"), ("soup spoon", "serving spoon"),
               ("dinner knife", "bread knife"), ("bread knife", "kitchen knife"), ("peeler", "potato peeler"),
               ("fish slice", "spatula"), ("wooden spoon", "serving spoon"))


def _render(name: str, seed: int, px_per_cm: float = PX_PER_CM_DEFAULT) -> np.ndarray:
    return render_utensil(name, np.random.default_rng(seed), px_per_cm)


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_every_class_renders_a_clean_rgba_sprite(name):
    sprite = _render(name, 0)
    assert sprite.dtype == np.uint8 and sprite.ndim == 3 and sprite.shape[2] == 4
    alpha = sprite[..., 3]
    assert alpha.max() == 255 and (alpha == 255).mean() > 0.05
    # the crop is tight with a transparent margin on every side
    for edge in (alpha[:MARGIN - 1], alpha[-MARGIN + 1:], alpha[:, :MARGIN - 1], alpha[:, -MARGIN + 1:]):
        assert edge.max() == 0
    assert alpha[MARGIN + 1].max() > 0 and alpha[-MARGIN - 2].max() > 0
    # anti-aliased: the outline has partial coverage, not only 0 and 255
    assert ((alpha > 0) & (alpha < 255)).sum() > 0.2 * np.sqrt(alpha.size)


@pytest.mark.parametrize("name", CLASS_NAMES)
@pytest.mark.parametrize("px_per_cm", [PX_PER_CM_DEFAULT, SCENE_PX_PER_CM])
def test_canonical_pose_and_real_length(name, px_per_cm):
    lo, hi = LENGTH_CM[name]
    for seed in range(3):
        sprite = _render(name, seed, px_per_cm)
        h, w = sprite.shape[:2]
        assert h > w, f"{name} should lie along the vertical axis, got {w}x{h}"
        length_px = h - 2 * MARGIN
        assert lo * px_per_cm - 2 <= length_px <= hi * px_per_cm + 2, (name, length_px / px_per_cm)


@pytest.mark.parametrize("name", WIDE_HEADED)
def test_working_end_is_at_the_top(name):
    for seed in range(3):
        solid = _render(name, seed)[..., 3] > 127
        cols = np.arange(solid.shape[1])
        left = np.where(solid, cols, solid.shape[1]).min(axis=1)
        right = np.where(solid, cols, -1).max(axis=1)
        spans = np.maximum(right - left + 1, 0)  # outer width of each row (a whisk's wires are sparse)
        assert np.argmax(spans) < 0.45 * len(spans), name


def test_same_seed_same_bytes_different_seed_different_sprite():
    for name in CLASS_NAMES:
        a, b, c = _render(name, 7), _render(name, 7), _render(name, 8)
        assert a.shape == b.shape and a.tobytes() == b.tobytes()
        assert a.shape != c.shape or a.tobytes() != c.tobytes()


def test_rng_is_advanced_so_successive_draws_vary():
    rng = np.random.default_rng(3)
    first, second = render_utensil("whisk", rng), render_utensil("whisk", rng)
    assert first.shape != second.shape or first.tobytes() != second.tobytes()


def test_class_index_and_name_agree():
    for i, name in enumerate(CLASS_NAMES):
        assert render_utensil(i, np.random.default_rng(1)).tobytes() == _render(name, 1).tobytes()
    assert render_utensil("Bread_Knife", np.random.default_rng(1)).tobytes() == _render("bread knife", 1).tobytes()


def test_a_sprite_is_the_same_bytes_on_every_call():
    """Each class drawn after all the others, then twice more: OpenCV's exact distance transform rounded differently
    with its buffers elsewhere in memory, which gave a serving spoon other bytes on later calls (it failed 3 runs of
    5 before sprites._distance_to_edge aligned them)."""
    first = [render_utensil(i, np.random.default_rng(1)).tobytes() for i in range(len(CLASS_NAMES))]
    for _ in range(2):
        again = [render_utensil(i, np.random.default_rng(1)).tobytes() for i in range(len(CLASS_NAMES))]
        assert [CLASS_NAMES[i] for i in range(len(CLASS_NAMES)) if again[i] != first[i]] == []


def test_spoon_sizes_are_ordered():
    def mean_length(name):
        return np.mean([_render(name, s).shape[0] for s in range(8)])

    assert mean_length("teaspoon") < mean_length("dessert spoon") < mean_length("serving spoon")
    assert mean_length("serving spoon") < mean_length("ladle")


def test_soup_spoon_bowl_is_rounder_than_dessert_spoon_bowl():
    def bowl_aspect(name, seed):
        alpha = _render(name, seed)[..., 3] > 127
        widths = alpha.sum(axis=1)
        rows = np.nonzero(widths >= 0.5 * widths.max())[0]
        rows = rows[rows < rows[0] + 0.5 * len(widths)]  # the bowl, not a wide handle end
        return (rows[-1] - rows[0] + 1) / widths.max()

    soup = np.mean([bowl_aspect("soup spoon", s) for s in range(6)])
    dessert = np.mean([bowl_aspect("dessert spoon", s) for s in range(6)])
    assert soup < dessert


@pytest.mark.parametrize("bad", ["spork", "", 20, -1, True, 2.0, None])
def test_bad_class_is_a_value_error_listing_the_classes(bad):
    with pytest.raises(ValueError, match="teaspoon"):
        render_utensil(bad, np.random.default_rng(0))


@pytest.mark.parametrize("px_per_cm", [0.0, -2.0, float("nan"), 1000.0])
def test_bad_scale_is_a_value_error(px_per_cm):
    with pytest.raises(ValueError, match="px_per_cm"):
        render_utensil("ladle", np.random.default_rng(0), px_per_cm)


def test_rng_must_be_a_generator():
    with pytest.raises(TypeError, match="default_rng"):
        render_utensil("ladle", 0)


def _scene_mask(name: str, seed: int, size: tuple[int, int] = (80, 40)) -> np.ndarray:
    """Silhouette at the scene scale, centred on its bounding box in a fixed frame."""
    alpha = _render(name, seed, SCENE_PX_PER_CM)[..., 3]
    ys, xs = np.nonzero(alpha > 127)
    crop = alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 127
    frame = np.zeros(size, bool)
    y0, x0 = (size[0] - crop.shape[0]) // 2, (size[1] - crop.shape[1]) // 2
    frame[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    return frame


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("pair", LOOK_ALIKES, ids=lambda p: " vs ".join(p))
def test_look_alikes_differ_more_than_variants_at_scene_scale(pair):
    seeds = range(6)
    masks = {name: [_scene_mask(name, s) for s in seeds] for name in pair}
    within = np.mean([_iou(a, b) for name in pair for a, b in itertools.combinations(masks[name], 2)])
    across = np.mean([_iou(a, b) for a in masks[pair[0]] for b in masks[pair[1]]])
    assert within > across + 0.05, (pair, within, across)


def test_scene_scale_downsampling_keeps_thin_parts_visible():
    # The composer shrinks 8 px/cm sprites to the scene's scale; at a quarter (SCENE_PX_PER_CM, below it) a whisk's
    # wires must still leave a visible balloon.
    sprite = _render("whisk", 0)
    small = cv2.resize(sprite[..., 3], None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    top = small[: small.shape[0] // 2]
    assert (top > 64).sum() > 40
