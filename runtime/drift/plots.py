"""Drift plots (matplotlib, Agg): output scatter and |delta p| histogram, per-class AP deltas, reconstruction
side-by-sides, metrics over degradation severity. Each function writes one PNG atomically and returns its path."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dualpath import contract
from dualpath.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        _pyplot().close(fig)
    return path


def probs_plot(p_ref: np.ndarray, p_cand: np.ndarray, path: Path, label: str) -> Path:
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    rng = np.random.default_rng(0)
    idx = rng.choice(p_ref.size, size=min(p_ref.size, 20000), replace=False)
    a.scatter(p_ref.ravel()[idx], p_cand.ravel()[idx], s=2, alpha=0.3)
    a.plot([0, 1], [0, 1], "k--", lw=0.8)
    a.set(xlabel="reference probability", ylabel=f"{label} probability", title="probs: candidate vs reference")
    b.hist((p_cand - p_ref).ravel(), bins=100, log=True)
    b.set(xlabel="candidate - reference", ylabel="count (log)", title="delta p")
    fig.tight_layout()
    return _save(fig, path)


def per_class_plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    plt = _pyplot()
    names = [r["name"] for r in rows]
    deltas = [r["ap_delta"] or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(range(len(names)), deltas, color=["tab:red" if d < 0 else "tab:green" for d in deltas])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
    ax.set(ylabel="AP delta (candidate - reference)", title="per-class average precision delta")
    fig.tight_layout()
    return _save(fig, path)


def recon_plot(noisy: np.ndarray, clean: np.ndarray, r_ref: np.ndarray, r_cand: np.ndarray, path: Path,
               k: int = 6) -> Path:
    """Rows: input | target | reference recon | candidate recon | |difference| x 10."""
    plt = _pyplot()
    k = min(k, len(noisy))
    ref, cand = contract.recon_to_unit(r_ref[:k]), contract.recon_to_unit(r_cand[:k])
    diff = np.clip(np.abs(ref - cand) * 10.0, 0, 1)
    columns = [("input", noisy[:k] / 255.0), ("target", clean[:k] / 255.0), ("reference", ref),
               ("candidate", cand), ("|diff| x10", diff)]
    fig, axes = plt.subplots(k, len(columns), figsize=(len(columns) * 1.6, k * 1.6), squeeze=False)
    for j, (title, images) in enumerate(columns):
        for i in range(k):
            axes[i, j].imshow(images[i], interpolation="nearest")
            axes[i, j].axis("off")
        axes[0, j].set_title(title, fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def severity_plot(rows: Sequence[dict[str, Any]], metrics: Sequence[str], path: Path) -> Path:
    plt = _pyplot()
    sev = [r["severity"] for r in rows]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        ax.plot(sev, [r["reference"][m] for r in rows], "o-", label="reference")
        ax.plot(sev, [r["candidate"][m] for r in rows], "s--", label="candidate")
        ax.set(xlabel="degradation severity", title=m)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
