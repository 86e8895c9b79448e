"""What the export checks on its INT8 QDQ models beyond their drift: TensorRT's Q/DQ rules on the s8 model (its
source), the s8 model's drift with its float layers on fp16 numbers (as a TensorRT --fp16 engine runs them), and a
per-tensor error report next to each QDQ model's drift report."""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable

from export.artifacts import int8_onnx_name

TRT_SOURCE = int8_onnx_name("s8")  # the QDQ model TensorRT builds its INT8 engine from
FP16_SIM = "tensorrt_fp16"  # the s8 drift entry's key for the simulation


class RulesBroken(Exception):
    """A verdict (exit 1): the s8 QDQ model breaks TensorRT's Q/DQ rules."""


def check_rules(out: Path, recipes: dict[str, Any]) -> None:
    """Record TensorRT's rules in the s8 recipe, read from the file on disk; RulesBroken when they fail."""
    from export.qdq_rules import failure_message, tensorrt_rules_recipe

    if TRT_SOURCE not in recipes or not (out / TRT_SOURCE).is_file():
        return
    recipes[TRT_SOURCE] |= tensorrt_rules_recipe(out / TRT_SOURCE)
    rules = recipes[TRT_SOURCE]["tensorrt_rules"]
    if rules != "pass":
        raise RulesBroken(failure_message(TRT_SOURCE, rules))


def fp16_simulation(config, drift_cfg, budgets, drift: dict[str, Any], log: Callable[[str], None]) -> None:
    """The s8 model again, its float layers on fp16 numbers (export.fp16_sim), against the same FP32 reference on the
    same scenes (no sweep); its result joins the s8 drift entry, and its violations count as the s8 model's."""
    from export.fp16_sim import simulate_fp16_float_layers
    from runtime.backends import load_backend
    from runtime.drift.report import drift_report

    entry = drift.get(TRT_SOURCE)
    if entry is None:
        return
    folder = config.out / "drift" / "model_int8_s8_onnx_tensorrt_fp16"
    with tempfile.TemporaryDirectory(prefix="dualpath-fp16sim-") as tmp:
        sim = Path(tmp) / "model_int8_s8_fp16_float_layers.onnx"
        info = simulate_fp16_float_layers(config.out / TRT_SOURCE, sim)
        cfg = dataclasses.replace(drift_cfg, severities=())
        with load_backend(config.out / entry["reference"], threads=config.threads) as ref, \
                load_backend(sim, threads=config.threads) as cand:
            r = drift_report(ref, cand, folder, cfg, budgets,
                             names={"reference": entry["reference"], "candidate": f"{TRT_SOURCE}, float layers in fp16"})
    entry[FP16_SIM] = {"report": str(folder.relative_to(config.out)), "passed": r["passed"],
                       "violations": r["violations"], "delta": r["delta"],
                       "label_flip_rate": r["outputs"]["label_flip_rate"],
                       "simulation": {k: v for k, v in info.items() if k != "fp16_op_types"}}
    if not r["passed"]:
        entry["passed"] = False
        entry["violations"] = entry["violations"] + [f"as TensorRT --fp16 runs it: {v}" for v in r["violations"]]
    log(f"{TRT_SOURCE} with its float layers in fp16 (TensorRT --fp16): " + ", ".join(
        f"d {m} {r['delta'][m]:+.4f}" for m in ("accuracy", "macro_map", "ssim"))
        + f", flips {r['outputs']['label_flip_rate']:.2%}: {'ok' if r['passed'] else 'PAST BUDGET'}")


def layer_reports(config, drift: dict[str, Any], batches, variants: list[str]) -> dict[str, str]:
    """drift/<artifact>/layer_error.json + .png for each QDQ model (export.layer_error); returns artifact -> json."""
    from export.layer_error import layer_error_report

    written = {}
    sample = list(batches)[:4]
    for v in variants:
        name = int8_onnx_name(v)
        entry = drift.get(name)
        if entry is None:
            continue
        folder = config.out / entry["report"]
        layer_error_report(config.out / entry["reference"], config.out / name, sample, folder)
        written[name] = str((folder / "layer_error.json").relative_to(config.out))
        entry["layer_error"] = written[name]
    return written
