"""report.md and its figures for one run folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dualpath import contract, metrics
from dualpath.files import write_text
from dualpath.metrics import METRIC_KEYS
from train import plots
from train.config import TrainConfig
from train.evaluate import Predictions

FIGURES = {
    "roc": "roc_curves.png",
    "mlcm": "mlcm.png",
    "recon": "reconstructions.png",
    "curves": "training_curves.png",
}
GRID_COLUMNS = 8


def fmt(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4f} ± {std:.4f}" if std else f"{value:.4f}"


def metrics_table(rows: list[tuple[str, dict, dict | None]]) -> list[str]:
    """Markdown table, one row per (name, values, stds), one column per metrics.json key."""
    lines = ["| | " + " | ".join(METRIC_KEYS) + " |", "|---" * (len(METRIC_KEYS) + 1) + "|"]
    for name, values, stds in rows:
        cells = [fmt(values.get(k), (stds or {}).get(k)) for k in METRIC_KEYS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def grid_columns(labels: np.ndarray) -> list[str]:
    """Short true-label captions for grid columns."""
    return ["\n".join(contract.CLASS_NAMES[j] for j in np.flatnonzero(row)) for row in labels]


def write_figures(out: Path, cfg: TrainConfig, histories, pred: Predictions, dataset) -> dict[str, str]:
    y = dataset.labels[pred.indices]
    name = f"{cfg.arch} + {cfg.loss.upper()}"
    written = {}
    plots.roc_figure(y, pred.probs, contract.CLASS_NAMES, out / FIGURES["roc"], f"ROC per class, held-out test: {name}")
    written["roc"] = FIGURES["roc"]
    matrix = metrics.mlcm(y, metrics.top_t(y, pred.probs))
    plots.mlcm_figure(matrix, contract.CLASS_NAMES, out / FIGURES["mlcm"], f"Multi-label confusion matrix (MLCM): {name}")
    written["mlcm"] = FIGURES["mlcm"]
    if pred.recon is not None:
        k = min(GRID_COLUMNS, len(pred.indices))
        idx = pred.indices[:k]
        rows = {
            "input": dataset.noisy[idx],
            "reconstruction": contract.recon_to_uint8(pred.recon[:k]),
            "clean target": dataset.clean[idx],
        }
        plots.image_grid(rows, out / FIGURES["recon"], f"Held-out test scenes: {name}", grid_columns(dataset.labels[idx]))
        written["recon"] = FIGURES["recon"]
    plots.curves_figure(histories, out / FIGURES["curves"], f"Training: {name}")
    written["curves"] = FIGURES["curves"]
    return written


def write_run_report(out: Path, cfg: TrainConfig, summary: dict, histories, pred: Predictions, dataset) -> None:
    figures = write_figures(out, cfg, histories, pred, dataset)
    folds = summary["folds"]
    phase1_ran = any(row["phase"] == 1 for history in histories for row in history)
    schedule = (
        f"phase 1 (frozen backbones): {cfg.phase1_epochs} at lr {cfg.phase1_lr:g}, then phase 2 at lr {cfg.phase2_lr:g}"
        if phase1_ran else f"phase 1 skipped (no pretrained weights), all in phase 2 at lr {cfg.phase2_lr:g}"
    )
    lines = [
        f"# {cfg.arch} + {cfg.loss.upper()}: training report",
        "",
        f"Backbone `{cfg.backbone}`, pretrained `{cfg.pretrained}`, {cfg.epochs} epochs ({schedule}), "
        f"batch {cfg.batch_size}, "
        f"seed {cfg.seed}. {len(folds)} fold(s); model selection by validation `{cfg.select_metric}`. "
        f"Held-out test: {summary['n_test']} scenes.",
        "",
        "## Held-out test and cross-validation",
        "",
        "Test: each fold's best checkpoint on the held-out test set, mean ± std over folds. "
        "CV: each fold's best checkpoint on its validation fold.",
        "",
        *metrics_table([
            ("held-out test", summary, summary["test_std"]),
            ("cross-validation", summary["cv_mean"], summary["cv_std"]),
        ]),
        "",
        "## Per fold",
        "",
        *metrics_table(
            [(f"fold {f['fold']} val (epoch {f['best_epoch']})", f["val"], None) for f in folds]
            + [(f"fold {f['fold']} test", f["test"], None) for f in folds]
        ),
        "",
        f"## Per class (held-out test, fold {summary['selected_fold']}'s model = best.pt)",
        "",
        "| class | support | precision | recall | F1 | AP | AUC |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {r['name']} | {r['support']} | {fmt(r['precision'])} | {fmt(r['recall'])} | {fmt(r['f1'])} "
            f"| {fmt(r['ap'])} | {fmt(r['auc'])} |"
            for r in summary["per_class"]
        ],
        "",
        "## Figures",
        "",
    ]
    for key, title in (("curves", "Training curves"), ("roc", "ROC curves (paper fig. 4/5)"),
                       ("mlcm", "MLCM (paper fig. 6)"), ("recon", "Reconstructions (paper table IV)")):
        if key in figures:
            lines += [f"### {title}", "", f"![{title}]({figures[key]})", ""]
    write_text(out / "report.md", "\n".join(lines))
