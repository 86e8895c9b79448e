"""Figures of the reports (matplotlib, Agg): ROC curves (paper fig. 4/5), MLCM heatmap (fig. 6),
reconstruction grids (table IV) and training curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display; safe on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dualpath import metrics  # noqa: E402
from dualpath.files import atomic_path  # noqa: E402


def roc_figure(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """Every class's ROC curve on one axes, legend with per-class AUC outside the plot."""
    curves = metrics.roc_curves(y_true, probs)
    aucs = [row["auc"] for row in metrics.per_class_report(y_true, probs, class_names)]
    fig, ax = plt.subplots(figsize=(11.5, 7.5), layout="constrained")
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, len(class_names)))
    for j, (name, (fpr, tpr), auc) in enumerate(zip(class_names, curves, aucs)):
        if auc is None:  # no positives (or no negatives) in this split: the curve is undefined
            ax.plot([], [], color=colors[j], label=f"{name} (n/a)")
            continue
        ax.plot(fpr, tpr, color=colors[j], lw=1.4, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8.5, frameon=False)
    _save(fig, path)


def mlcm_figure(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> None:
    """Counts in the cells; colour is the row-normalised share, so rare true classes stay visible."""
    names = list(class_names) + ["(none)"]
    n = len(names)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(13, 11.5), layout="constrained")
    im = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.55 else "black")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8.5)
    ax.set_yticks(range(n), names, fontsize=8.5)
    ax.set(xlabel="predicted label (top-T)", ylabel="true label", title=title)
    fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02, label="share of the true label's row")
    _save(fig, path)


def image_grid(rows: dict[str, np.ndarray], path: Path, title: str, column_titles: Sequence[str] = ()) -> None:
    """rows: name -> uint8 (n, H, W, 3) images; one row per name, one column per scene."""
    names = list(rows)
    n = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(names), n, figsize=(1.55 * n + 1.4, 1.6 * len(names) + 0.6), squeeze=False,
                             layout="constrained")
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(rows[name][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center")
            if r == 0 and c < len(column_titles):
                ax.set_title(column_titles[c], fontsize=7)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def curves_figure(histories: list[list[dict]], path: Path, title: str) -> None:
    """Loss and validation metrics per epoch, one line per fold; dotted line where phase 2 starts."""
    panels = [
        ("train_total", "training loss"),
        ("val_total", "validation loss"),
        ("val_macro_map", "validation macro mAP"),
        ("val_ssim", "validation SSIM"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), layout="constrained")
    for ax, (key, label) in zip(axes, panels):
        for k, history in enumerate(histories):
            epochs = [row["epoch"] for row in history if row.get(key) is not None]
            values = [row[key] for row in history if row.get(key) is not None]
            if values:
                ax.plot(epochs, values, marker="o", ms=3, label=f"fold {k}")
            switch = [row["epoch"] for row in history if row["phase"] == 2 and row["epoch"] > 1][:1]
            previous = [row for row in history if row["phase"] == 1]
            if switch and previous:
                ax.axvline(switch[0] - 0.5, color="0.5", ls=":", lw=1)
        if not ax.lines:
            ax.text(0.5, 0.5, "n/a for this model", ha="center", va="center", transform=ax.transAxes, color="0.4")
        ax.set(title=label, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if len(histories) > 1:
        axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def robustness_figure(series: dict[str, dict], diffs: dict[str, dict], severities: Sequence[float], path: Path,
                      noise_se: float, title: str, off_scale: Sequence[str] = ()) -> None:
    """Macro mAP and accuracy against severity (series: name -> (severity label -> key -> {"mean", "std"}, colour);
    one line per name, error bars one std over folds) and the paired macro mAP differences (diffs: name ->
    (severity label -> {"mean", "se"}, colour); bars noise_se standard errors: a bar clear of zero is beyond the
    noise). A colour of None takes matplotlib's next. Series named in off_scale (far below the others, e.g. a model
    at chance) are a note under the axes instead of a line, so the scale shows the others' differences."""
    labels = [f"{s:g}" for s in severities]
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.6), layout="constrained")
    offsets = np.linspace(-0.06, 0.06, max(len(series), 1))
    markers = "osD^v<>"
    for ax, key, name in ((axes[0], "macro_map", "macro mAP"), (axes[1], "accuracy", "label-wise accuracy (top-T)")):
        notes = []
        for j, (row, (values, color)) in enumerate(series.items()):
            mean = [values[s][key]["mean"] for s in labels]
            std = [values[s][key]["std"] or 0.0 for s in labels]
            if row in off_scale:
                notes.append(f"{row}: {min(mean):.3f}-{max(mean):.3f}, off the scale below")
                continue
            ax.errorbar(np.asarray(severities) + offsets[j], mean, yerr=std, marker=markers[j % len(markers)], ms=5,
                        capsize=3, lw=1.6, label=row, color=color)
        ax.set(xlabel="degradation severity (1 = training mix)", ylabel=name, title=name)
        if notes:
            ax.text(0.98, 0.02, "\n".join(notes), transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
                    color="0.35")
        ax.set_xticks(severities, labels)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8.5, loc="lower left", bbox_to_anchor=(0.0, 0.08) if off_scale else None)
    ax = axes[2]
    offsets = np.linspace(-0.05, 0.05, max(len(diffs), 1))
    for j, (name, (cells, color)) in enumerate(diffs.items()):
        mean = [cells[s]["mean"] for s in labels]
        err = [noise_se * (cells[s]["se"] or 0.0) for s in labels]
        ax.errorbar(np.asarray(severities) + offsets[j], mean, yerr=err, marker=markers[j % len(markers)], ms=5,
                    capsize=3, lw=1.6, label=name, color=color)
    ax.axhline(0.0, color="0.3", lw=1, ls="--")
    ax.set(xlabel="degradation severity (1 = training mix)", ylabel="difference in macro mAP",
           title=f"paired macro mAP differences (bars: ±{noise_se:g} SE)")
    ax.set_xticks(severities, labels)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5)
    fig.suptitle(title, fontsize=11)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Atomically (a full disk names the figure: OutputError), and the figure is closed either way."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")  # "tight" also keeps outside legends and long labels in
    finally:
        plt.close(fig)
