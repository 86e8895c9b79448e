"""FP32 reference vs candidate outputs on the same scenes: both heads' metrics, their deltas, and how the outputs
themselves differ (label flips, |delta p|, SQNR). Arrays in, a JSON-able dict out."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from dualpath import contract
from dualpath.metrics import METRIC_KEYS, image_metrics, multilabel_metrics, per_class_report, top_t


def run_backend(backend, images: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
    """uint8 NHWC scenes -> the backend's stacked outputs {probs, recon}."""
    outs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch_size):
        x = contract.preprocess(images[start : start + batch_size])
        for name, value in backend.infer({contract.INPUT_NAME: x}).items():
            outs.setdefault(name, []).append(value)
    return {name: np.concatenate(parts) for name, parts in outs.items()}


def head_metrics(labels: np.ndarray, clean: np.ndarray, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Every scalar metrics.json key (dualpath.metrics.METRIC_KEYS) of both heads' outputs."""
    cls = multilabel_metrics(labels, outputs[contract.OUTPUT_PROBS])
    img = image_metrics(contract.recon_to_unit(outputs[contract.OUTPUT_RECON]), clean.astype(np.float32) / 255.0)
    return {k: float(v) for k, v in {**cls, **img}.items() if k in METRIC_KEYS}


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB (inf when identical)."""
    noise = float(np.sum((reference.astype(np.float64) - candidate) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(signal / noise)


def output_drift(labels: np.ndarray, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray]) -> dict[str, Any]:
    p_ref, p_cand = ref[contract.OUTPUT_PROBS], cand[contract.OUTPUT_PROBS]
    flips = top_t(labels, p_ref) != top_t(labels, p_cand)  # (N, C): a label chosen by one and not the other
    dp = np.abs(p_ref - p_cand)
    dr = np.abs(ref[contract.OUTPUT_RECON] - cand[contract.OUTPUT_RECON])
    return {
        "label_flip_rate": float(flips.any(axis=1).mean()),  # share of scenes whose top-T label set changed
        "label_flips_per_class": flips.sum(axis=0).astype(int).tolist(),
        "mean_abs_delta_p": float(dp.mean()),
        "max_abs_delta_p": float(dp.max()),
        "mean_abs_delta_recon": float(dr.mean()),
        "max_abs_delta_recon": float(dr.max()),
        "sqnr_probs_db": sqnr_db(p_ref, p_cand),
        "sqnr_recon_db": sqnr_db(ref[contract.OUTPUT_RECON], cand[contract.OUTPUT_RECON]),
    }


def per_class_ap(labels: np.ndarray, ref: np.ndarray, cand: np.ndarray, names: Sequence[str]) -> list[dict]:
    rows = []
    for r, c in zip(per_class_report(labels, ref, names), per_class_report(labels, cand, names)):
        delta = None if r["ap"] is None or c["ap"] is None else c["ap"] - r["ap"]
        rows.append({"name": r["name"], "support": r["support"], "ap_reference": r["ap"], "ap_candidate": c["ap"],
                     "ap_delta": delta})
    return rows


def compare(labels: np.ndarray, clean: np.ndarray, ref: dict[str, np.ndarray], cand: dict[str, np.ndarray],
            class_names: Sequence[str] = contract.CLASS_NAMES) -> dict[str, Any]:
    """The drift of `cand` from `ref` on scenes with these labels and clean targets."""
    m_ref, m_cand = head_metrics(labels, clean, ref), head_metrics(labels, clean, cand)
    return {
        "n": int(len(labels)),
        "reference": m_ref,
        "candidate": m_cand,
        "delta": {k: m_cand[k] - m_ref[k] for k in m_ref},
        "outputs": output_drift(labels, ref, cand),
        "per_class": per_class_ap(labels, ref[contract.OUTPUT_PROBS], cand[contract.OUTPUT_PROBS], class_names),
    }
