"""Scores across frames: an exponential moving average, so labels on a live camera flicker less.

    s_0 = p_0,   s_t = alpha * p_t + (1 - alpha) * s_{t-1}

alpha = 1 is no smoothing; alpha = 0.3 settles within about 1 / 0.3 ~ 3 frames (a tenth of a second at 30 fps)
while a label that shows up for a single frame only reaches 0.3 of its score.
"""
from __future__ import annotations

import numpy as np


def ema(previous: np.ndarray | None, scores: np.ndarray, alpha: float) -> np.ndarray:
    """One step of the moving average; the first frame (previous None) starts it at its own scores."""
    scores = np.asarray(scores, np.float32)
    if previous is None:
        return scores.copy()
    if previous.shape != scores.shape:
        raise ValueError(f"scores changed shape between frames: {previous.shape} then {scores.shape}")
    return (alpha * scores + (1.0 - alpha) * previous).astype(np.float32)


class ScoreSmoother:
    """Holds the running average between frames; `reset()` when the scene changes (e.g. the next image of a folder)."""

    def __init__(self, alpha: float) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"smoothing alpha must be in (0, 1] (1 = no smoothing, 0.3 = strong), got {alpha}")
        self.alpha = float(alpha)
        self._state: np.ndarray | None = None

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        self._state = ema(self._state, scores, self.alpha)
        return self._state

    def reset(self) -> None:
        self._state = None
