"""Thin adapters from CalibrationBatches to each quantizer's data protocol (imported lazily: optional packages)."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def ort_reader(batches: Iterable[dict[str, np.ndarray]]):
    """An onnxruntime.quantization.CalibrationDataReader over the batches (rewindable, as ORT may read twice)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._iter = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iter, None)

        def rewind(self) -> None:
            self._iter = iter(batches)

    return _Reader()


def nncf_dataset(batches: Iterable[dict[str, np.ndarray]], per_sample: bool = True):
    """An nncf.Dataset over the batches; per_sample splits them into batch-1 items, as NNCF's subset_size counts."""
    import nncf

    if per_sample:
        items = [{k: v[i : i + 1] for k, v in batch.items()} for batch in batches for i in range(_batch_len(batch))]
    else:
        items = list(batches)
    return nncf.Dataset(items)


def _batch_len(batch: dict[str, np.ndarray]) -> int:
    return len(next(iter(batch.values())))
