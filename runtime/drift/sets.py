"""Held-out drift scenes: a seed of their own (not training's small seeds, not calibration's 1_000_00x)."""
from __future__ import annotations

from pathlib import Path

from dualpath.scenes import SceneConfig, SceneDataset, cache_tag, generate_dataset

from dualpath.seeds import DRIFT_SEED  # a seed of its own (dualpath.seeds holds every range)


def drift_dataset(data_root: str | Path, n: int, severity: float = 1.0, seed: int = DRIFT_SEED,
                  workers: int = 1) -> SceneDataset:
    """n drift scenes at a degradation severity (1 = the training mix), cached under data_root."""
    config = SceneConfig().with_severity(severity)
    out = Path(data_root) / f"drift-n{n}-seed{seed}-sev{severity:g}-{cache_tag(config)}"
    return generate_dataset(config, seed=seed, n=n, out=out, workers=workers, progress=False,
                            what="drift check's scene generation", wait=True)  # a cache: wait, then reuse
