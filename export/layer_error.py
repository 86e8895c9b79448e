"""Where an INT8 QDQ model loses: the SQNR between FP32 and INT8 of every quantized tensor, worst first.

    report = layer_error_report(fp32_path, qdq_path, batches[:4], out / "drift" / "model_int8_s8_onnx")
    # -> layer_error.json (every tensor) and layer_error.png (the worst 30)

ONNX Runtime's own tool does the work (onnxruntime.quantization.qdq_loss_debug, what Polygraphy's `debug precision`
does for TensorRT): both models are run with every intermediate tensor as an output on the same calibration
batches, the QDQ model's tensors are matched to the FP32 model's by name, and for each quantized tensor two SQNRs
are computed (20 log10(|x| / |x - y|), dB; higher is better):
  sqnr_db        FP32 model's tensor vs the INT8 model's dequantized one: the error accumulated up to there
  qdq_sqnr_db    the INT8 model's tensor before vs after its own Q/DQ: what quantizing this tensor alone costs
A tensor whose sqnr_db is low while its qdq_sqnr_db is high inherits its error from upstream.
"""
from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

WORST_PLOTTED = 30
LABEL_CHARS = 48
LOSSLESS_DB = 100.0  # a tensor's own Q/DQ above this changes (almost) nothing
REPORT_FORMAT = "dualpath-layer-error/1"
OP_SHORT = {"BatchNormalization": "BN", "GlobalAveragePool": "GAP", "AveragePool": "AvgPool", "ReduceMean": "Mean",
            "ReduceMax": "Max"}


def _activations(model: Path, batches: list[dict[str, np.ndarray]], tmp: Path) -> dict[str, list[np.ndarray]]:
    from onnxruntime.quantization.qdq_loss_debug import collect_activations, modify_model_output_intermediate_tensors

    augmented = tmp / f"{model.stem}_augmented.onnx"
    modify_model_output_intermediate_tensors(str(model), str(augmented))
    return collect_activations(str(augmented), iter(batches))


def short_name(tensor: str, limit: int = LABEL_CHARS) -> str:
    """A readable label for a tensor named after its torch module path, e.g.
    '/model/encoder/denseblock2/denselayer1/conv1/Conv_output_0' -> 'enc/db2/dl1/conv1/Conv'."""
    name = re.sub(r"_output_0$", "", tensor.strip("/"))
    name = re.sub(r"^model/", "", name)
    for long, short in (("classifier_backbone", "cls_bb"), ("encoder", "enc"), ("decoder", "dec"),
                        ("denseblock", "db"), ("denselayer", "dl"), ("transition", "tr"), ("features", "feat"),
                        ("reconstruction", "recon"), ("blocks.", "b")):
        name = name.replace(long, short)
    parts = name.split("/")  # 'conv/conv.1/conv.1.0' (nested torch Sequentials) -> 'conv.1.0'
    parts = [p for p, nxt in zip(parts, parts[1:] + [""]) if not (nxt == p or nxt.startswith(p + "."))]
    name = "/".join(OP_SHORT.get(p, p) for p in parts)
    return name if len(name) <= limit else "..." + name[-(limit - 3):]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def layer_errors(fp32_path: Path, qdq_path: Path, batches: Iterable[dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """[{tensor, label, sqnr_db, qdq_sqnr_db}] for every tensor the QDQ model quantizes and the FP32 model has,
    worst (lowest sqnr_db) first."""
    from onnxruntime.quantization.qdq_loss_debug import compute_activation_error, create_activation_matching

    batches = list(batches)
    if not batches:
        raise ValueError("layer_error_report needs at least one calibration batch")
    with tempfile.TemporaryDirectory(prefix="dualpath-layer-error-") as tmp:
        float_acts = _activations(Path(fp32_path), batches, Path(tmp))
        qdq_acts = _activations(Path(qdq_path), batches, Path(tmp))
    matching = create_activation_matching(qdq_acts, float_acts)
    matched = {k: v for k, v in matching.items() if v.get("float") and v.get("pre_qdq") and v.get("post_qdq")}
    errors = compute_activation_error(matched)
    rows = [{"tensor": name, "label": short_name(name), "sqnr_db": _finite(e["xmodel_err"]),
             "qdq_sqnr_db": _finite(e["qdq_err"])} for name, e in errors.items()]
    # an identical tensor has SQNR +inf (stored as null): it sorts last
    return sorted(rows, key=lambda r: (r["sqnr_db"] is None, r["sqnr_db"] if r["sqnr_db"] is not None else 0.0))


def plot_layer_errors(rows: list[dict[str, Any]], path: Path, title: str, worst: int = WORST_PLOTTED) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from export.atomic import atomic_path

    shown = [r for r in rows if r["sqnr_db"] is not None][:worst]
    height = 1.6 + 0.28 * max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(9, height), dpi=110)
    y = np.arange(len(shown))[::-1]  # worst at the top
    bars = [r["sqnr_db"] for r in shown]
    qdq = np.array([r["qdq_sqnr_db"] if r["qdq_sqnr_db"] is not None else np.inf for r in shown], dtype=float)
    # a Q/DQ that changes nothing (a ReLU or pooling of values already on its grid) has SQNR ~300 dB: drawn at the
    # right edge so the bars keep the width
    edge = 1.15 * max(bars + [q for q in qdq if q < LOSSLESS_DB] + [1.0])
    ax.barh(y, bars, color="#c0504d", label="FP32 vs INT8 (accumulated up to this tensor)")
    near = qdq < edge
    ax.scatter(qdq[near], y[near], marker="|", s=140, color="black", zorder=3, label="this tensor's own Q/DQ")
    if (~near).any():
        ax.scatter(np.full((~near).sum(), edge), y[~near], marker=">", s=30, color="black", zorder=3,
                   label=f"own Q/DQ above {edge:.0f} dB (off the scale)")
    ax.set_xlim(0, edge * 1.03)
    ax.set_yticks(y, [r["label"] for r in shown], fontsize=8, family="monospace")
    ax.set_xlabel("SQNR (dB, higher is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.7 / height), ncol=3, frameon=False)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def layer_error_report(fp32_path: str | Path, qdq_path: str | Path, batches: Iterable[dict[str, np.ndarray]],
                       out_folder: str | Path) -> dict[str, Any]:
    """Per-tensor SQNR of `qdq_path` against `fp32_path` on `batches` (a few calibration batches), written to
    out_folder/layer_error.json (all tensors, worst first) and layer_error.png (the worst 30); returns the JSON."""
    from export.atomic import write_json

    batches = list(batches)
    rows = layer_errors(Path(fp32_path), Path(qdq_path), batches)
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "format": REPORT_FORMAT,
        "reference": Path(fp32_path).name,
        "candidate": Path(qdq_path).name,
        "scenes": int(sum(len(next(iter(b.values()))) for b in batches)),
        "batches": len(batches),
        "metric": "SQNR dB = 20 log10(|fp32| / |fp32 - int8|); qdq_sqnr_db: the tensor before vs after its own Q/DQ",
        "tensors": rows,
    }
    write_json(out / "layer_error.json", report)
    plot_layer_errors(rows, out / "layer_error.png",
                      f"{Path(qdq_path).name}: worst {min(WORST_PLOTTED, len(rows))} of {len(rows)} quantized tensors "
                      f"({report['scenes']} calibration scenes)")
    return report
