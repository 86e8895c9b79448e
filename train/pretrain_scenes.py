"""What a pretraining worker process runs: torch-free, so a spawned worker starts in a moment and never imports torch."""
from __future__ import annotations

import numpy as np


def render_images(seed: int, start: int, stop: int) -> dict[str, np.ndarray]:
    """Scenes start..stop-1 of `seed` (the default SceneConfig): only what pretraining uses crosses the pipe."""
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range

    arrays = render_range(SceneConfig(), seed, start, stop)
    return {key: arrays[key] for key in ("noisy", "clean", "labels")}
