import dataclasses

import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes import render_scene


def test_scene_fields(small_config):
    sc = render_scene(small_config, 0, 7)
    k = len(sc.classes)
    assert 1 <= k <= 3
    assert sc.noisy.shape == sc.clean.shape == (64, 64, 3) and sc.noisy.dtype == sc.clean.dtype == np.uint8
    assert sc.labels.shape == (contract.NUM_CLASSES,) and sc.labels.dtype == np.uint8
    assert sorted(np.flatnonzero(sc.labels).tolist()) == sorted(sc.classes)
    assert sc.masks.shape == (k, 64, 64) and set(np.unique(sc.masks)) <= {0, 1}
    assert sc.boxes.shape == (k, 4)
    x0, y0, x1, y1 = sc.boxes.T
    assert np.all((0 <= x0) & (x0 < x1) & (x1 <= 64) & (0 <= y0) & (y0 < y1) & (y1 <= 64))


def test_same_arguments_same_bytes(small_config):
    a, b = render_scene(small_config, 3, 11), render_scene(small_config, 3, 11)
    for name in ("noisy", "clean", "labels", "masks", "boxes"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.clean, render_scene(small_config, 4, 11).clean)
    assert not np.array_equal(a.clean, render_scene(small_config, 3, 12).clean)


def test_labelled_objects_stay_visible(small_config):
    scenes = [render_scene(small_config, 1, i) for i in range(120)]
    visible = np.concatenate([s.visible for s in scenes])
    # Placement retries until every object keeps min_visible of its area; rare crowded scenes may fall short.
    assert np.mean(visible >= small_config.min_visible) >= 0.97
    assert all(m.sum() > 0 for s in scenes for m in s.masks), "an object has no visible pixel at 64x64"


def test_objects_overlap_and_occlude(small_config):
    scenes = [render_scene(small_config, 2, i) for i in range(150)]
    multi = [s for s in scenes if len(s.classes) > 1]
    overlapping = 0
    for s in multi:
        b = s.boxes
        ix = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        iy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        overlapping += bool(np.any(np.triu((ix > 0) & (iy > 0), 1)))
    assert overlapping / len(multi) >= 0.7
    assert np.mean([s.visible.min() < 0.98 for s in multi]) >= 0.4, "objects should hide parts of each other"


def test_severity_scales_degradation(small_config):
    def err(severity):
        cfg = small_config.with_severity(severity)
        pairs = [render_scene(cfg, 0, i) for i in range(30)]
        return np.mean([np.abs(p.noisy.astype(float) - p.clean).mean() for p in pairs]), pairs

    e0, p0 = err(0.0)
    e1, p1 = err(1.0)
    e2, _ = err(2.0)
    assert e0 == 0.0, "severity 0 must leave the input equal to the clean target"
    assert 0 < e1 < e2
    np.testing.assert_array_equal(p0[5].clean, p1[5].clean)  # same scene, only the degradation differs


def test_degraded_input_is_darker_and_noisier(small_config):
    sc = [render_scene(small_config, 0, i) for i in range(30)]
    assert np.mean([s.noisy.mean() for s in sc]) < 0.9 * np.mean([s.clean.mean() for s in sc])


@pytest.mark.parametrize("option", [{"motion_blur_p": 1.0}, {"jpeg_p": 1.0}])
def test_optional_degradations(small_config, option):
    base = render_scene(small_config, 0, 3)
    cfg = dataclasses.replace(small_config, degrade=dataclasses.replace(small_config.degrade, **option))
    other = render_scene(cfg, 0, 3)
    np.testing.assert_array_equal(base.clean, other.clean)
    assert not np.array_equal(base.noisy, other.noisy)


def test_relative_sizes_are_kept(small_config):
    """A serving spoon is drawn larger than a teaspoon in scenes too: one px-per-cm for every object."""
    cfg = dataclasses.replace(small_config, cardinality_weights=(1.0,), min_visible=0.0)
    spans = {"teaspoon": [], "serving spoon": []}
    for i in range(400):
        sc = render_scene(cfg, 0, i)
        name = contract.CLASS_NAMES[sc.classes[0]]
        if name in spans:
            x0, y0, x1, y1 = sc.boxes[0]
            spans[name].append(np.hypot(x1 - x0, y1 - y0))
    assert np.median(spans["serving spoon"]) > 1.4 * np.median(spans["teaspoon"])


def test_other_render_sizes_work(small_config):
    """A canvas that is not an integer multiple of the output (OpenCV's area resize has a 4-channel limit there)."""
    cfg = dataclasses.replace(small_config, render_size=96)
    sc = render_scene(cfg, 0, 5)
    assert sc.noisy.shape == (64, 64, 3) and sc.masks.shape[1:] == (64, 64)
    assert all(m.sum() > 0 for m in sc.masks)


def test_single_objects_keep_their_area_inside_the_frame(small_config):
    """min_in_frame: a whisk's or masher's head is not cut off by the frame (one object: visible = in frame).
    Objects that fit the frame keep min_in_frame of their area in it; longer ones (a ladle across a 24 cm close-up)
    are centred on it, as far in as they can be."""
    wide = dataclasses.replace(small_config, cardinality_weights=(1.0,), field_of_view_cm=40.0)  # every utensil fits
    visible = np.concatenate([render_scene(wide, 5, i).visible for i in range(120)])
    assert np.mean(visible >= wide.min_in_frame) >= 0.97
    close = dataclasses.replace(wide, field_of_view_cm=24.0)
    visible = np.concatenate([render_scene(close, 5, i).visible for i in range(120)])
    assert np.mean(visible >= close.min_in_frame) >= 0.7 and visible.min() >= 0.45
