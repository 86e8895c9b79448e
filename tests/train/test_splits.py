from __future__ import annotations

import numpy as np
import pytest

from train.splits import load_splits, make_splits, save_splits


def _labels(n: int = 600, c: int = 20, seed: int = 0) -> np.ndarray:
    """Balanced multi-hot rows with 1-3 positives, like the generated scenes."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, c), np.uint8)
    for row in y:
        row[rng.choice(c, size=rng.integers(1, 4), replace=False)] = 1
    return y


def test_test_split_is_stratified_and_disjoint():
    y = _labels()
    splits = make_splits(y, folds=5, seed=3)
    # Iterative stratification trades exact sizes for label balance: within a few scenes of 20%.
    assert abs(len(splits.test) - 120) <= 6
    for fold in splits.folds:
        assert not set(fold.train) & set(fold.val)
        assert not (set(fold.train) | set(fold.val)) & set(splits.test)
        assert len(fold.train) + len(fold.val) + len(splits.test) == len(y)
    # Iterative stratification: each class's share in the test part stays near its global share.
    assert np.abs(y[splits.test].mean(0) - y.mean(0)).max() < 0.02
    # A random 96-scene part is typically off by ~0.045 in its worst class; the folds do better on average.
    deviations = [np.abs(y[fold.val].mean(0) - y.mean(0)).max() for fold in splits.folds]
    assert max(deviations) < 0.06 and np.mean(deviations) < 0.03


def test_kfold_validation_parts_partition_the_development_part():
    y = _labels()
    splits = make_splits(y, folds=5, seed=0)
    vals = np.concatenate([f.val for f in splits.folds])
    assert len(vals) == len(set(vals)) == len(splits.dev) == len(y) - len(splits.test)
    assert set(vals) == set(splits.dev)


def test_one_fold_is_a_fifth_of_the_development_part():
    splits = make_splits(_labels(), folds=1, val_fraction=0.2, seed=0)
    assert len(splits.folds) == 1
    n_dev = len(splits.dev)
    assert abs(len(splits.folds[0].val) - 0.2 * n_dev) <= 5
    assert len(splits.folds[0].val) + len(splits.folds[0].train) == n_dev


def test_splits_are_deterministic_and_depend_on_the_seed(tmp_path):
    y = _labels()
    a, b, c = make_splits(y, folds=3, seed=1), make_splits(y, folds=3, seed=1), make_splits(y, folds=3, seed=2)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    save_splits(a, tmp_path / "splits.json")
    loaded = load_splits(tmp_path / "splits.json")
    assert loaded.to_dict() == a.to_dict()
    loaded.check_matches(y)


def test_saved_splits_refuse_another_data_set():
    splits = make_splits(_labels(seed=0), folds=2, seed=0)
    with pytest.raises(ValueError, match="different data set"):
        splits.check_matches(_labels(seed=1))


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        (np.zeros((10, 3, 2)), {"folds": 2}, "multi-hot matrix"),
        (np.full((10, 4), 2), {"folds": 2}, "only 0 and 1"),
        (_labels(n=4), {"folds": 1, "test_fraction": 0.1}, "one part would be empty"),
        (_labels(n=20), {"folds": 30}, "lower --folds"),
    ],
)
def test_bad_input_is_refused(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_splits(labels, **kwargs)
