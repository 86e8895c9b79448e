"""A labelled grid of noisy / clean pairs: the picture to look at before trusting a data set."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dualpath import contract
from dualpath.files import atomic_path


def preview_grid(noisy: np.ndarray, clean: np.ndarray, labels: np.ndarray, out: str | Path, cols: int = 4,
                 title: str | None = None) -> Path:
    """Save a PNG of the pairs (noisy input | clean target) with their class names; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 3.3, rows * 2.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        pair = np.concatenate([noisy[i], np.full((noisy.shape[1], 2, 3), 255, np.uint8), clean[i]], axis=1)
        ax.imshow(pair, interpolation="nearest")
        names = [contract.CLASS_NAMES[c] for c in np.flatnonzero(labels[i])]
        ax.set_title("\n".join(names), fontsize=7.5, linespacing=1.05)
    fig.suptitle(title or "input (degraded) | target (clean)", fontsize=11)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)
    return out
