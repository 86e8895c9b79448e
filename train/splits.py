"""Multi-label stratified splits: an 80:20 held-out test set, then K folds (or one validation split) on the 80.

Iterative stratification (Sechidis et al. 2011, the `iterative-stratification` package) keeps every class's share
close to its global share in each part, which plain random splits miss for rare label combinations.
Splits are a pure function of (labels, fractions, folds, seed) and are saved as indices in the run folder.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from dualpath.files import write_json


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # int64 indices into the whole data set, sorted
    val: np.ndarray


@dataclass(frozen=True)
class Splits:
    test: np.ndarray  # held-out test indices, sorted
    folds: tuple[Fold, ...]
    labels_sha256: str  # of the label matrix the splits were drawn from: refuses a different data set
    seed: int

    @property
    def dev(self) -> np.ndarray:
        return np.union1d(self.folds[0].train, self.folds[0].val)

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "labels_sha256": self.labels_sha256,
            "test": self.test.tolist(),
            "folds": [{"train": f.train.tolist(), "val": f.val.tolist()} for f in self.folds],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Splits:
        folds = tuple(Fold(_indices(f["train"]), _indices(f["val"])) for f in data["folds"])
        return cls(_indices(data["test"]), folds, data["labels_sha256"], int(data["seed"]))

    def check_matches(self, labels: np.ndarray) -> None:
        if labels_digest(labels) != self.labels_sha256:
            raise ValueError(
                "the saved splits were drawn from a different data set (label matrix digest differs); "
                "use the data set the run was started with (--data) or start a new run folder"
            )


def labels_digest(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.uint8).tobytes()).hexdigest()


def make_splits(
    labels: np.ndarray, *, folds: int, test_fraction: float = 0.2, val_fraction: float = 0.2, seed: int = 0
) -> Splits:
    """Held-out test part, then `folds` stratified folds of the rest (folds=1: one split of val_fraction)."""
    labels = _check_labels(labels)
    dev, test = _stratified_split(labels, np.arange(len(labels)), test_fraction, seed)
    if folds == 1:
        train, val = _stratified_split(labels, dev, val_fraction, seed + 1)
        fold_list = (Fold(train, val),)
    else:
        fold_list = tuple(_kfold(labels, dev, folds, seed + 1))
    return Splits(test, fold_list, labels_digest(labels), seed)


def save_splits(splits: Splits, path: Path) -> None:
    write_json(path, splits.to_dict(), indent=None)


def load_splits(path: Path) -> Splits:
    try:
        return Splits.from_dict(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"cannot read splits from {path}: {err}; delete it to draw new splits") from err


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) == 0:
        raise ValueError(f"labels must be a non-empty (N, C) multi-hot matrix, got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be multi-hot (only 0 and 1)")
    return labels.astype(np.uint8)


def _stratified_split(
    labels: np.ndarray, idx: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    n_small = int(round(len(idx) * fraction))
    if n_small < 1 or n_small >= len(idx):
        raise ValueError(f"cannot split {len(idx)} scenes with fraction {fraction}: one part would be empty")
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    big, small = next(splitter.split(np.zeros((len(idx), 1)), labels[idx]))
    return np.sort(idx[big]), np.sort(idx[small])


def _kfold(labels: np.ndarray, idx: np.ndarray, folds: int, seed: int) -> list[Fold]:
    if folds > len(idx):
        raise ValueError(f"cannot make {folds} folds from {len(idx)} development scenes; lower --folds")
    kfold = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [
        Fold(np.sort(idx[tr]), np.sort(idx[va])) for tr, va in kfold.split(np.zeros((len(idx), 1)), labels[idx])
    ]


def _indices(values: list) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)
