"""The OpenVINO format's step: IR FP32, INT8 (OpenVINO's conversion of the export's QDQ model, or NNCF's own
quantization: --ov-int8) and FP16 weights, each converted from the FP32 ONNX (export.openvino_export), and bf16: the
FP32 IR again, its metadata asking CPUs to compute in bf16 (--bf16)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.artifacts import BF16_XML, FP16_XML, FP32_ONNX, FP32_XML, INT8_XML, Artifact
from export.context import Context, artifact_graph, qdq_source_for_openvino


def step(config, ctx: Context, artifacts: list[Artifact]) -> dict[str, Any]:
    """Write `artifacts` (IRs of one precision); returns their recipes (none for the FP32 IR)."""
    recipes: dict[str, Any] = {}
    for a in artifacts:
        if a.name == FP32_XML:
            openvino_fp32(config, ctx.log)
        elif a.name == INT8_XML and qdq_source_for_openvino(config):  # read back from the file, as the others' are
            recipes[a.name] = openvino_from_qdq(config, qdq_source_for_openvino(config), ctx.recipes, ctx.log) | {
                "graph": artifact_graph(config.out / INT8_XML)}
        elif a.name == INT8_XML:
            recipes[a.name] = openvino_int8(config, ctx, [], ctx.log)
        elif a.name == FP16_XML:
            recipes[a.name] = openvino_fp16(config, ctx.log)
        elif a.name == BF16_XML:
            recipes[a.name] = openvino_bf16(config, ctx.log)
    return recipes


def quantize(config, ctx: Context, a: Artifact, kept: list[str], weights: Path) -> Path:
    """The INT8 IR again (accuracy control, QAT), from the FP32 ONNX `weights` with the `kept` layers also in float."""
    openvino_int8(config, ctx, kept, lambda _: None, source=weights)
    return config.out / a.name


def _props(config, precision: str | None = None) -> dict[str, str]:
    """The FP32 ONNX's metadata, for the IR's rt_info (with its own precision)."""
    from runtime.backends.ov import onnx_props

    props = onnx_props(config.out / FP32_ONNX)
    return props | {"precision": json.dumps(precision)} if precision else props


def openvino_fp32(config, log) -> None:
    from export import openvino_export as ovx
    from runtime.backends.metadata import ModelMetadata

    props = _props(config)
    ModelMetadata.from_props(props)
    ovx.save_ir(ovx.convert(config.out / FP32_ONNX), config.out / FP32_XML, props)
    log(f"OpenVINO FP32: {config.out / FP32_XML}")


def openvino_int8(config, ctx: Context, float_extra: list[str], log, source: Path | None = None) -> dict[str, Any]:
    """NNCF's INT8 IR of the FP32 ONNX (or of `source`, the QAT-tuned FP32 ONNX: same graph, other weights)."""
    import onnx

    from export import openvino_export as ovx
    from export.quantize_onnx import OPENVINO_FLOATS, float_nodes

    floats = float_nodes(onnx.load(str(config.out / FP32_ONNX)), recipe=OPENVINO_FLOATS) + float_extra
    model = ovx.quantize_int8(ovx.convert(source or config.out / FP32_ONNX), ctx.calibration(config), floats,
                              subset_size=config.calibration.n, activation_ranges=config.ov_ranges)
    ovx.save_ir(model, config.out / INT8_XML, _props(config, "int8-nncf"))
    log(f"OpenVINO INT8 (NNCF): {config.out / INT8_XML}")
    return {"format": "OpenVINO IR, NNCF post-training quantization", "preset": "mixed",
            "calibration": f"nncf {config.ov_ranges} activation ranges, min/max weights, fast bias correction",
            "activation_ranges": config.ov_ranges, "kept_in_float": sorted(set(floats)), "weights_from": "ptq"}


def openvino_from_qdq(config, source: str, recipes: dict[str, Any], log) -> dict[str, Any]:
    """OpenVINO's own conversion of a QDQ model (its Q/DQ pairs become FakeQuantize, run as INT8 by the CPU plugin):
    the same graph, scales and float layers as that model, so the same drift (docs/measurements.md: on the seed-1
    `cpu` model NNCF's IR changed 5.4% of scenes' labels, this one 3.6%). Built after accuracy control and QAT
    (export.pipeline): from the QDQ model as shipped."""
    from export import openvino_export as ovx

    src = recipes.get(source, {})
    bits = {"int8_weight_bits": json.dumps(src["weight_bits"])} if "weight_bits" in src else {}
    ovx.save_ir(ovx.convert(config.out / source), config.out / INT8_XML, _props(config, "int8-qdq") | bits)
    log(f"OpenVINO INT8 (converted from {source}): {config.out / INT8_XML}")
    return {"format": f"OpenVINO IR converted from {source} (its Q/DQ as FakeQuantize)", "source": source,
            "calibration": src.get("calibration"), "placement": src.get("placement"),
            "kept_in_float": src.get("kept_in_float", []), "weights_from": src.get("weights_from", "ptq"),
            "weight_bits": src.get("weight_bits"),
            **({"qat": src["qat"]} if "qat" in src else {})}


def openvino_fp16(config, log) -> dict[str, Any]:
    from export import openvino_export as ovx

    ovx.save_ir(ovx.convert(config.out / FP32_ONNX), config.out / FP16_XML, _props(config, "fp16"),
                compress_to_fp16=True)
    log(f"OpenVINO FP16: {config.out / FP16_XML}")
    return {"format": "OpenVINO IR, FP16 weights", "converter": "openvino.save_model(compress_to_fp16=True)",
            "target": "OpenVINO GPU / ARM CPU (FP16 compute); x86 CPUs decompress to FP32"}


def openvino_bf16(config, log) -> dict[str, Any]:
    """The FP32 IR read back and saved with its metadata asking CPUs for bf16 compute (BF16_INFERENCE_PRECISION): the
    same graph and FP32 weights, which the CPU plugin runs in bf16 where the CPU has AVX512_BF16 or AMX (where INT8 is
    not always the fastest artifact: docs/export.md). Its drift report compares it with the FP32 IR run in f32; the
    recipe says what this machine's plugin computed it in, so a drift report made on a CPU without native bf16 (which
    computes f32, measuring nothing of bf16) says so."""
    import openvino as ov

    from export import openvino_export as ovx
    from runtime.backends.ov import OpenVinoBackend

    model = ov.Core().read_model(str(config.out / FP32_XML))
    ovx.save_ir(model, config.out / BF16_XML, _props(config, "bf16") | {
        "inference_precision": json.dumps(ovx.BF16_INFERENCE_PRECISION)})
    with OpenVinoBackend(config.out / BF16_XML, threads=config.threads) as be:  # as the drift report will run it
        computed = be.inference_precision
    native = ovx.cpu_has_native_bf16()
    log(f"OpenVINO bf16: {config.out / BF16_XML} (this CPU computes it in {computed}"
        + ("" if native else "; it has no native bf16: its drift report measures f32, not bf16") + ")")
    return {"format": "OpenVINO IR, FP32 weights, bf16 inference precision on CPUs", "source": FP32_XML,
            "converter": "the FP32 IR with rt_info inference_precision " + json.dumps(ovx.BF16_INFERENCE_PRECISION),
            "target": "x86 CPUs with AVX512_BF16 or AMX (OpenVINO computes f32 where the CPU has neither)",
            "computed_in_here": computed, "cpu_native_bf16": native}
