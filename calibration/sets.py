"""Calibration sets: generated scenes on a seed stream of their own, cached on disk like any scenes data set."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from dualpath import contract
from dualpath.scenes import SceneConfig, SceneDataset, cache_tag, generate_dataset
# Seeds of their own, far from training's (dualpath.seeds holds every range)
from dualpath.seeds import ACCURACY_CONTROL_SEED, CALIBRATION_SEED, SEED_STREAM_START  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class CalibrationConfig:
    n: int = 300  # scenes; 300 (five balanced blocks of 60) show every class 30 times, ORT / NNCF need far fewer
    seed: int = CALIBRATION_SEED
    batch_size: int = 16  # scenes per batch handed to the quantizer
    scenes: SceneConfig = field(default_factory=SceneConfig)  # the training distribution (severity 1)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1 calibration scene, got {self.n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.seed < SEED_STREAM_START:
            raise ValueError(
                f"calibration seed {self.seed} lies on the training seed range (< {SEED_STREAM_START}), so its scenes "
                f"could be training or test scenes; use a seed >= {SEED_STREAM_START} (default {CALIBRATION_SEED})"
            )

    def folder_name(self) -> str:
        return f"calib-n{self.n}-seed{self.seed}-{cache_tag(self.scenes)}"


def build_calibration_set(config: CalibrationConfig, out: str | Path, workers: int = 1,
                          progress: bool = False, overwrite: bool = False, wait: bool = True) -> SceneDataset:
    """The scenes of `config` in folder `out`, generated once and reused (checked against the manifest) after;
    overwrite replaces a different scenes data set there (never a folder of other files). One writer at a time:
    with `wait` (a cache, as the export uses it) a second one waits and then reuses the set; without it (python -m
    calibration) it gets FolderBusy, exit 2."""
    return generate_dataset(config.scenes, seed=config.seed, n=config.n, out=out, workers=workers, progress=progress,
                            overwrite=overwrite, what="calibration", wait=wait)


class CalibrationBatches:
    """A re-iterable sequence of {input_name: float32 (B, 3, S, S)} batches, preprocessed as the model expects."""

    def __init__(self, images: np.ndarray, batch_size: int = 16, input_name: str = contract.INPUT_NAME) -> None:
        if len(images) == 0:
            raise ValueError("no calibration images")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images = images  # uint8 NHWC RGB
        self.batch_size = batch_size
        self.input_name = input_name

    @classmethod
    def from_dataset(cls, dataset: SceneDataset, batch_size: int = 16) -> "CalibrationBatches":
        return cls(dataset.noisy, batch_size)  # the degraded input, as the camera delivers it

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.images), self.batch_size):
            yield {self.input_name: contract.preprocess(self.images[start : start + self.batch_size])}
