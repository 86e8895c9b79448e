"""The ONNX format's step: the FP32 ONNX (with its parity against torch, enforced), the QDQ INT8 models (ONNX
Runtime static quantization, export.quantize_onnx) and the FP16 ONNX (ONNX Runtime's converter)."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from export.artifacts import FP16_ONNX, FP32_ONNX, Artifact, ranges_for
from export.atomic import atomic_path, write_json
from export.context import Context, ExportFailed, parity_images
from export.metadata import model_metadata


def step(config, ctx: Context, artifacts: list[Artifact]) -> dict[str, Any]:
    """Write `artifacts` (ONNX models of one precision); returns their recipes."""
    recipes: dict[str, Any] = {}
    qdq = iter(sorted((a for a in artifacts if a.variant), key=lambda a: config.qdq_variants.index(a.variant)))
    for a in [next(qdq) if a.variant else a for a in artifacts]:  # the QDQ models in --qdq-variants' order
        if a.name == FP32_ONNX:
            ctx.manifest["onnx"] = export_fp32_onnx(config, ctx)
            ctx.manifest["parity"] = check_parity(config, ctx)
        elif a.name == FP16_ONNX:
            recipes[a.name] = fp16_onnx(config, ctx.log)
        elif a.variant is not None:
            recipes[a.name] = quantize_qdq(config, ctx, a)
    return recipes


def export_fp32_onnx(config, ctx: Context) -> dict:
    import onnx

    from export import onnx_fp32

    path = config.out / FP32_ONNX
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dualpath-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        onnx_fp32.export_onnx(ctx.model, raw, config.opset, config.exporter)
        proto = onnx_fp32.simplify(onnx.load(str(raw)))
    metadata = model_metadata(ctx.ckpt, ctx.manifest["checkpoint"]["sha256"], precision="fp32",
                              opset=onnx_fp32.opset_of(proto), exporter=config.exporter)
    onnx_fp32.embed_metadata(proto, metadata)
    onnx_fp32.check_graph(proto)
    with atomic_path(path) as tmp_path:
        onnx.save(proto, str(tmp_path))
    write_json(config.out / "metadata.json", metadata.to_props())  # for the TensorRT build script on the device
    ctx.log(f"ONNX FP32: {path} (opset {onnx_fp32.opset_of(proto)}, {config.exporter} exporter, "
            f"{time.perf_counter() - t0:.1f} s)")
    return {"opset": onnx_fp32.opset_of(proto), "exporter": config.exporter}


def check_parity(config, ctx: Context) -> dict:
    from export.onnx_fp32 import parity
    from runtime.backends import load_backend

    with load_backend(config.out / FP32_ONNX, "onnxruntime", threads=config.threads) as be:
        result = parity(ctx.model, be, parity_images(config.parity_n))
    ctx.log(f"parity vs torch on {result['n']} scenes: probs max |diff| {result['probs_max_abs_diff']:.2e}, "
            f"recon max |diff| {result['recon_max_abs_diff']:.2e}")
    worst = max(result["probs_max_abs_diff"], result["recon_max_abs_diff"])
    result["tolerance"] = config.parity_tol
    if not worst <= config.parity_tol:  # NaN fails too
        raise ExportFailed(f"the FP32 ONNX model differs from torch by {worst:.3g} (tolerance {config.parity_tol:g}, "
                           f"{result['n']} scenes): the export is wrong; try --exporter dynamo or another --opset")
    return result


def quantize_qdq(config, ctx: Context, a: Artifact) -> dict[str, Any]:
    """QDQ variant `a.variant` of the FP32 ONNX from the calibration's ranges; its recipe."""
    import onnx

    from export import quantize_onnx as q

    variant = q.variant(a.variant, config.u8_weights)
    path = quantize(config, ctx, a, [], config.out / FP32_ONNX)
    floats = variant.float_nodes(onnx.load(str(config.out / FP32_ONNX)))
    summary = q.qdq_summary(onnx.load(str(path)))
    ctx.log(f"QDQ INT8 ({a.variant}, {variant.target}): {path.name}, {summary['conv_gemm_int8']}/"
            f"{summary['conv_gemm_total']} conv/gemm in INT8")
    return {
        "format": "QDQ", "activations": variant.activation, "symmetric_activations": variant.symmetric,
        "weights": "int8 per-channel symmetric", "calibration": config.calib_method, "target": variant.target,
        "placement": variant.placement, "shared_concat_ranges": variant.share_concat,
        "reduce_range_weights": variant.reduce_range,
        "weight_bits": variant.weight_bits, "float_head": variant.floats.head,
        "float_decoder_blocks": variant.floats.decoder_blocks, "kept_in_float": sorted(set(floats)),
        "weights_from": "ptq",
        "graph": summary,
    }


def quantize(config, ctx: Context, a: Artifact, kept: list[str], weights: Path) -> Path:
    """QDQ artifact `a` again (accuracy control, QAT) from the FP32 ONNX `weights` (the export's, or QAT's tuned copy:
    the same graph) with its variant's recipe and the `kept` layers also in float."""
    ctx.write_ranges(config)
    return write_variant(config, a.variant, weights, config.out / a.name, kept)


def write_variant(config, variant: str, weights: Path, out: Path, kept: list[str] = ()) -> Path:
    """QDQ `variant` of the FP32 ONNX `weights` at `out`, from the export's calibration ranges."""
    import onnx

    from export import quantize_onnx as q

    recipe = q.variant(variant, config.u8_weights)
    q.write_variant(weights, out, config.out / ranges_for(recipe), recipe, config.calib_method,
                    onnx.load(str(config.out / FP32_ONNX)), list(kept))
    return out


def fp16_onnx(config, log) -> dict[str, Any]:
    """FP16 ONNX with ONNX Runtime's converter (onnxruntime.transformers.float16): FP16 weights and compute, float32
    input and outputs (keep_io_types), so the runtime feeds it like the others. For ONNX Runtime GPU and as the
    TensorRT FP16 engine's source."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(config.out / FP32_ONNX)), keep_io_types=True)
    props = {p.key: p.value for p in proto.metadata_props} | {"precision": json.dumps("fp16")}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(config.out / FP16_ONNX) as tmp:
        onnx.save(proto, str(tmp))
    log(f"ONNX FP16: {config.out / FP16_ONNX}")
    return {"format": "ONNX FP16", "converter": "onnxruntime.transformers.float16.convert_float_to_float16",
            "io_types": "float32 (keep_io_types)", "target": "ONNX Runtime GPU; TensorRT FP16 engine source"}
