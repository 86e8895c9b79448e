"""The INT8 tuning step, run once every INT8 artifact it tunes is written (export.pipeline): QAT (--qat always: every
one from tuned weights), accuracy control (--accuracy-control: each past its budgets on validation scenes gets QAT,
then its most sensitive layers back in float), then the recipes read back from the files and TensorRT's Q/DQ rules
checked on the s8 model. An artifact is rebuilt by its format's step module: `quantize(config, ctx, artifact, kept,
weights) -> path` (export.artifacts.FORMATS names the module)."""
from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.artifacts import FP32_ONNX, Artifact, int8_onnx_name
from export.context import (Context, ExportFailed, artifact_graph, parity_images, qdq_variants, step_module,
                            tuned)

VALIDATION_N = 500  # accuracy control's own validation scenes (at most --drift-n), disjoint from the drift scenes


@dataclass(frozen=True)
class ControlConfig:
    # Accuracy control never returns a model with fewer than this share of its convolutions / gemms in INT8: past it,
    # it keeps the best round it saw and reports the budget not met (export exit 1).
    min_int8_share: float = 0.5
    # It aims at this share of each budget on its own validation scenes: the gate then measures on 1000 other
    # scenes, where a model whose drift just met the budget on the first set can miss it by noise.
    margin: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_int8_share <= 1.0:  # also False for NaN
            raise ValueError(f"min_int8_share must be in [0, 1], got {self.min_int8_share}")
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(f"control_margin must be in (0, 1], got {self.margin}")


def step(config, ctx: Context, artifacts: list[Artifact]) -> dict[str, Any]:
    """Tune `artifacts` (export.context.tuned) as the config asks; returns their recipes as shipped."""
    from export import int8_checks
    from export.qat_step import QatSource, rebuild_all

    batches = ctx.calibration(config)
    if config.accuracy_control:
        ctx.write_ranges(config)  # layer rounds rank and rebuild QDQ models from them
    ctx.qat = QatSource(config, ctx.model, ctx.ckpt, ctx.log, variants=qdq_variants(config), images=parity_images(16),
                        quantize=functools.partial(quantize, config, ctx))
    if config.qat == "always":
        rebuild_all(ctx.qat, artifacts, ctx.recipes, ctx.log)
    if config.accuracy_control:
        use = ctx.qat if config.qat != "never" else None
        ctx.manifest["accuracy_control"] = accuracy_control(config, ctx, batches, use)
        apply_control(ctx.recipes, ctx.manifest["accuracy_control"], ctx.qat)
    if ctx.qat.info is not None:
        ctx.manifest["qat"] = ctx.qat.record()
    refresh_recipes(config.out, ctx.recipes)
    try:
        int8_checks.check_rules(config.out, ctx.recipes)
    except int8_checks.RulesBroken as e:
        raise ExportFailed(str(e)) from None
    return {a.name: ctx.recipes[a.name] for a in artifacts if a.name in ctx.recipes}


def quantize(config, ctx: Context, name: str, kept: list[str], weights: Path) -> Path:
    """Artifact `name` rebuilt by its format's step from the FP32 ONNX `weights`, `kept` layers also in float."""
    a = config.artifacts[name]
    return step_module(a.format).quantize(config, ctx, a, kept, weights)


def refresh_recipes(out: Path, recipes: dict[str, Any]) -> None:
    """Every quantized artifact's graph counts and float layers, recomputed from the written file."""
    for name, recipe in recipes.items():
        if name.endswith((".onnx", ".xml")) and (out / name).is_file() and "int8" in name:
            recipe["graph"] = artifact_graph(out / name)


def _violations_fn(config, reference: Path, budgets, images_labels_clean):
    """artifact -> {violations, worst share of a budget} against `reference` on the accuracy-control scenes."""
    from runtime.backends import load_backend
    from runtime.drift.budgets import check, scaled, worst_usage
    from runtime.drift.compare import head_metrics, output_drift, run_backend

    budgets = scaled(budgets, config.control.margin)

    noisy, labels, clean = images_labels_clean
    with load_backend(reference, threads=config.threads) as ref:
        out_ref = run_backend(ref, noisy)
    m_ref = head_metrics(labels, clean, out_ref)

    def evaluate(artifact: Path) -> dict[str, Any]:
        with load_backend(artifact, threads=config.threads) as cand:
            out = run_backend(cand, noisy)
        m, drift = head_metrics(labels, clean, out), output_drift(labels, out_ref, out)  # label flips budgeted too
        return {"violations": check(budgets, m_ref, m, outputs=drift), "worst": worst_usage(budgets, m_ref, m, drift),
                "label_flip_rate": drift["label_flip_rate"]}

    return evaluate


def accuracy_control(config, ctx: Context, batches, qat_source=None) -> dict[str, Any]:
    """For each INT8 artifact past its budget (validation scenes): post-training quantization first; then, with a
    `qat_source` (export.qat_step), the same recipe on QAT-tuned weights; then the most sensitive layers back to float
    (on the QAT weights when QAT ran), never below config.control.min_int8_share of its convolutions / gemms in INT8."""
    import onnx

    from dualpath.seeds import ACCURACY_CONTROL_SEED
    from export import accuracy_control as ac
    from export.quantize_onnx import float_nodes
    from runtime.drift.sets import drift_dataset

    control, log = config.control, ctx.log
    val = drift_dataset(config.data_root, min(config.drift.n, VALIDATION_N), seed=ACCURACY_CONTROL_SEED,
                        workers=config.workers)
    data = (val.noisy, val.labels, val.clean)
    fp32 = config.out / FP32_ONNX
    proto = onnx.load(str(fp32))
    floats = float_nodes(proto)
    weighted = {n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm")}
    ranking = functools.cache(lambda: rank_layers(config, fp32, batches, floats))  # only when a layer round runs
    recon_path = [n.name for n in proto.graph.node if n.name.startswith(ac.RECON_SCOPES)]
    results = {}
    for a in tuned(config):
        name = a.name
        evaluate = _violations_fn(config, config.out / a.reference, ctx.budgets, data)
        start = evaluate(config.out / name)
        graph = artifact_graph(config.out / name)
        max_float = ac.allowed_in_float(graph["conv_gemm_int8"], graph["conv_gemm_total"], control.min_int8_share)
        shipped = "qat" if qat_source is not None and qat_source.path is not None and config.qat == "always" else "ptq"
        if not start["violations"]:
            results[name] = {"met": True, "kept_in_float": [], "rounds": [{"layers_in_float": 0, **start}],
                             "max_layers_in_float": max_float, "best_round": 0, "violations": [], "shipped": shipped}
            log(f"accuracy control {name}: {control.margin:g} x budgets met as built ({shipped.upper()}, "
                f"{start['worst']:.0%} of the tightest used) on {len(val)} validation scenes")
            continue
        other, rebuild_ptq = [], False
        if qat_source is not None and shipped == "ptq":
            log(f"accuracy control {name}: post-training quantization misses ({'; '.join(start['violations'])}): "
                "quantization-aware fine-tuning")
            ptq_round = {"layers_in_float": 0, "weights": "ptq", **start}
            qat_round = {"layers_in_float": 0, "weights": "qat", **evaluate(qat_source.rebuild(name, []))}
            if not qat_round["violations"]:
                results[name] = {"met": True, "kept_in_float": [], "rounds": [ptq_round, qat_round],
                                 "max_layers_in_float": max_float, "best_round": 1, "violations": [], "shipped": "qat"}
                log(f"accuracy control {name}: {control.margin:g} x budgets met with QAT "
                    f"({qat_round['worst']:.0%} of the tightest used) on {len(val)} validation scenes")
                continue
            # The layer rounds go on from whichever weights came closer (QAT can move a model further from FP32).
            if qat_round["worst"] < ptq_round["worst"]:
                shipped, start, other = "qat", qat_round, [ptq_round]
            else:
                start, other = ptq_round, [qat_round]
                rebuild_ptq = True
            log(f"accuracy control {name}: QAT {'; '.join(qat_round['violations'])}; layer rounds on the "
                f"{shipped.upper()} weights")

        def build(kept: list[str], name=name, shipped=shipped) -> Path:
            if shipped == "qat":
                return qat_source.rebuild(name, kept)
            return quantize(config, ctx, name, kept, fp32)

        if rebuild_ptq:  # the file on disk holds the QAT round: back to post-training quantization
            build([])
        results[name] = ac.control(ranking(), build, evaluate, start, fallback=recon_path, max_float=max_float,
                                   weighted=weighted)
        r = results[name]
        r["shipped"] = shipped
        r["rounds"][:0] = other  # the round not continued from, first; then control's own rounds
        r["best_round"] += len(other)
        log(f"accuracy control {name}: {len(r['kept_in_float'])} layers back in float (at most {max_float}, keeping "
            f">= {control.min_int8_share:.0%} of {graph['conv_gemm_total']} conv/gemm INT8), {control.margin:g} x "
            f"budgets {'met' if r['met'] else 'NOT met: ' + '; '.join(r['violations'])} on {len(val)} validation scenes")
    return {"validation": {"seed": ACCURACY_CONTROL_SEED, "n": len(val)}, "budget_share": control.margin,
            "min_int8_share": control.min_int8_share, "artifacts": results}


def rank_layers(config, fp32: Path, batches, floats: list[str]) -> list[tuple[str, float]]:
    """Layers by how much INT8 hurts them, measured on the first QDQ model this export writes; an export without one
    (OpenVINO alone) ranks on a temporary one."""
    from export import accuracy_control as ac
    from export.onnx_step import write_variant

    probes = qdq_variants(config)
    if probes:
        return ac.rank_layers(fp32, config.out / int8_onnx_name(probes[0]), list(batches)[:4], set(floats))
    variant = config.qdq_variants[0]
    with tempfile.TemporaryDirectory(prefix="dualpath-probe-") as tmp:
        probe = write_variant(config, variant, fp32, Path(tmp) / int8_onnx_name(variant))  # as it would be written
        return ac.rank_layers(fp32, probe, list(batches)[:4], set(floats))


def apply_control(recipes: dict[str, Any], control: dict[str, Any], qat_source=None) -> None:
    from export.qat_step import mark

    for name, r in control["artifacts"].items():
        if name in recipes:
            recipes[name]["kept_in_float"] = sorted(set(recipes[name]["kept_in_float"]) | set(r["kept_in_float"]))
            mark(recipes, name, qat_source if r.get("shipped") == "qat" else None)
