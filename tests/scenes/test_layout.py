import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes import SceneConfig
from dualpath.scenes.layout import scene_classes


def _counts(config, seed, n):
    classes = [scene_classes(config, seed, i) for i in range(n)]
    per_class = np.zeros(contract.NUM_CLASSES, int)
    for c in classes:
        per_class[list(c)] += 1
    cardinality = np.bincount([len(c) for c in classes], minlength=4)[1:]
    return classes, per_class, cardinality


@pytest.mark.parametrize("n", [6000, 3000, 1000])
def test_every_class_equally_often_within_two_percent(n):
    classes, per_class, _ = _counts(SceneConfig(), 0, n)
    assert all(len(set(c)) == len(c) for c in classes), "a scene repeats a class"
    assert np.abs(per_class / per_class.mean() - 1).max() <= 0.02, per_class


def test_default_cardinality_is_equal_thirds():
    _, per_class, cardinality = _counts(SceneConfig(), 3, 6000)
    assert cardinality.tolist() == [2000, 2000, 2000]
    assert per_class.tolist() == [600] * 20  # 12000 objects over 20 classes, exactly


def test_cardinality_is_configurable_and_still_balanced():
    cfg = SceneConfig(cardinality_weights=(0.5, 0.3, 0.2))
    _, per_class, cardinality = _counts(cfg, 1, 1200)
    np.testing.assert_allclose(cardinality / 1200, [0.5, 0.3, 0.2], atol=0.01)
    assert np.abs(per_class / per_class.mean() - 1).max() <= 0.02


def test_single_object_scenes():
    classes, per_class, cardinality = _counts(SceneConfig(cardinality_weights=(1.0,)), 0, 600)
    assert cardinality.tolist() == [600, 0, 0] and per_class.tolist() == [30] * 20


def test_layout_depends_on_seed_and_is_reproducible():
    a = [scene_classes(SceneConfig(), 0, i) for i in range(100)]
    assert a == [scene_classes(SceneConfig(), 0, i) for i in range(100)]
    assert a != [scene_classes(SceneConfig(), 1, i) for i in range(100)]


def test_every_prefix_is_balanced_to_one_count():
    """Data sets that end inside a balance block stay balanced: class counts differ by at most one per block."""
    cfg = SceneConfig()
    per_class = np.zeros(contract.NUM_CLASSES, int)
    for i in range(300):
        per_class[list(scene_classes(cfg, 5, i))] += 1
        assert per_class.max() - per_class.min() <= 1
