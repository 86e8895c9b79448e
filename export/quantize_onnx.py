"""FP32 ONNX -> QDQ INT8 ONNX with ONNX Runtime's static quantization, calibrated once and cached.

Both variants come from one calibration pass (its ranges cached as JSON, so variants and accuracy-control rounds do
not calibrate again):
  s8  what TensorRT builds (explicit quantization): symmetric INT8 activations quantized where the convolutions and
      gemms read them (TensorRT's recommended placement: inputs of weighted ops), per-channel INT8 weights, float
      biases; concatenations, BatchNorm and ReLU between them stay float (FP16 in a --fp16 engine), so no DenseNet
      feature is requantized on its way through a block (Variant.placement, docs/measurements.md)
  u8  asymmetric UINT8 activations, per-channel 7-bit INT8 weights, the same placement: for ONNX Runtime on CPUs
Kept in float (never quantized): the output sigmoid, the decoder tanh, the CBAM gates and the renormalisation of
the reconstruction before the classifier path, so no scale spans both heads. Variant.share_concat gives every
DenseNet concatenation one shared range for its inputs and output (a plain INT8 copy in TensorRT): the s8 recipe
before TensorRT placement; measured, the union ranges it forces cost 13% of scenes their top-T labels.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

CALIB_METHODS = ("minmax", "entropy", "percentile")
WEIGHTED_OPS = ("Conv", "Gemm")  # TensorRT placement quantizes the activations these read
# ONNX Runtime's QDQ op set plus Concat (see share_concat_ranges).
EXTRA_OP_TYPES = ("Concat",)
FLOAT_OP_TYPES = ("Sigmoid", "Tanh")
FLOAT_NAME_PARTS = ("/cbam/", "/normalize/")  # node-name scopes of the TorchScript exporter (torch module paths)
# Kept in float as well, because the drift report showed INT8 does not hold there: the classifier head and the fusion
# before it (the ops of the model's own forward: pooling, z * z_c) carried nearly all of the macro mAP drop, the two
# full-resolution decoder blocks and the reconstruction head the SSIM drop (docs/measurements.md). Both are a small
# share of the compute; the DenseNets and the deep decoder blocks stay INT8.
HEAD_SCOPE = "/model/head/"
FLOAT_SCOPES = (HEAD_SCOPE, "/model/reconstruction/")
FLOAT_DECODER_BLOCKS = 2  # the last (highest-resolution) decoder blocks kept in float


@dataclass(frozen=True)
class FloatRecipe:
    """Which parts besides the always-float ones (sigmoid, tanh, CBAM, renormalisation, the model's own pooling and
    fusion) stay float: the classifier head and the last (highest-resolution) decoder blocks. Measured per artifact
    (docs/measurements.md): u8 holds with its head float and one decoder block; OpenVINO's IR with its head INT8 and
    two blocks, and so does s8 since 2026-12-07 (percentile ranges: head float and one block left it past its SSIM or
    flip budget on 3 of 5 make-demo models, SSIM down to -0.0072; head INT8 and two blocks held all 5, SSIM within
    0.0003). Each keeps 96 of its 106 conv/gemm layers INT8 (the target's 90%)."""
    head: bool = True
    decoder_blocks: int = FLOAT_DECODER_BLOCKS


@dataclass(frozen=True)
class Variant:
    name: str
    activation: str  # "int8" | "uint8"
    symmetric: bool
    target: str  # who runs it, written to the manifest
    # One scale per DenseNet concat group (see share_concat_ranges): a plain INT8 copy for TensorRT's concatenation;
    # measured, the union ranges cost 13.5% of drift scenes their top-T labels (docs/measurements.md). Off for both.
    share_concat: bool = False
    # 7-bit weights: guards u8 x s8 kernels against 16-bit saturation on x86 CPUs without VNNI (AVX2's
    # vpmaddubsw adds two u8 x s8 products in int16: 2 x 255 x 127 overflows it, 2 x 255 x 64 does not).
    reduce_range: bool = False
    # Where activations are quantized:
    #   "weighted-inputs": only where Conv / Gemm read them (TensorRT's developer guide: quantize the inputs of
    #     weighted ops, not their outputs); float biases (TensorRT's parser refuses int32 DequantizeLinear; it
    #     quantizes biases itself); concatenations, BatchNorm, ReLU and pooling float, so no DenseNet feature is
    #     requantized at every concatenation of its block (export.qdq_rules holds; 4.0% label flips on the `cpu`
    #     model against 13.5% with every tensor quantized and shared concat ranges, docs/measurements.md);
    #   "all": every tensor ONNX Runtime's quantizer can quantize (its default; QLinearConv / QLinearConcat chains).
    placement: str = "weighted-inputs"
    floats: FloatRecipe = FloatRecipe()

    @property
    def weight_bits(self) -> int:
        """8, or 7 with reduce_range (the bits the runtime reads from the model's int8_weight_bits metadata)."""
        return 7 if self.reduce_range else 8

    def op_types(self) -> list[str]:
        return list(WEIGHTED_OPS) if self.placement == "weighted-inputs" else op_types_to_quantize()

    def extra_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ActivationSymmetric": self.symmetric, "WeightSymmetric": True}
        if self.placement == "weighted-inputs":
            options |= {"QuantizeBias": False, "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS)}
        return options

    def float_nodes(self, proto) -> list[str]:
        return float_nodes(proto, recipe=self.floats)


VARIANTS = {
    # Symmetric INT8 leaves post-ReLU decoder inputs 7 bits: the two full-resolution decoder blocks stay float
    # (FP16 in a --fp16 engine), the head INT8 (benchmarks/results/int8_s8_floats.json).
    "s8": Variant("s8", "int8", True, "TensorRT (explicit quantization; symmetric activations required)",
                  floats=FloatRecipe(head=False, decoder_blocks=2)),
    # Weighted-input placement too: with every tensor quantized (QLinearConv chains, ~1.7x faster in ONNX Runtime)
    # 8.5% of scenes changed labels, with inputs and outputs of weighted ops 5.2% (docs/measurements.md).
    # 8-bit weights by default (--u8-weights 8): 3.7% label flips against 6.7% with 7-bit weights on the 2026-12-07
    # evening make-demo model, 4.1% against 5.2% on the morning's (docs/results.md); exact on CPUs with VNNI or AMX.
    # --u8-weights 7 for CPUs with AVX2 only (variant() below; the runtime warns where an 8-bit one meets such a CPU).
    "u8": Variant("u8", "uint8", False, "ONNX Runtime on CPUs (u8 activations x s8 8-bit weights: CPUs with VNNI/AMX)",
                  floats=FloatRecipe(head=True, decoder_blocks=1)),
}
U8_WEIGHT_BITS = (8, 7)


def variant(name: str, u8_weights: int = 8) -> Variant:
    """The QDQ variant `name` of VARIANTS, the u8 one with `u8_weights`-bit weights (7: ONNX Runtime's reduce_range)."""
    if u8_weights not in U8_WEIGHT_BITS:
        raise ValueError(f"u8 weights must be 8 or 7 bits, got {u8_weights!r}")
    v = VARIANTS[name]
    if name != "u8" or u8_weights == v.weight_bits:
        return v
    return dataclasses.replace(v, reduce_range=True,
                               target="ONNX Runtime on CPUs (u8 activations x s8 7-bit weights: any x86 CPU, AVX2 included)")
OPENVINO_FLOATS = FloatRecipe(head=False, decoder_blocks=2)  # NNCF's INT8 IR (export.openvino_export)


def op_types_to_quantize() -> list[str]:
    from onnxruntime.quantization.registry import QDQRegistry

    return sorted(set(QDQRegistry) | set(EXTRA_OP_TYPES))


def float_nodes(proto, expect_cbam: bool = True, recipe: "FloatRecipe | None" = None) -> list[str]:
    """Names of the nodes kept in float: output sigmoid, decoder tanh, CBAM, the classifier path's renormalisation, the
    model's own pooling and fusion, the reconstruction head, and per `recipe` the classifier head and the last decoder
    blocks (default: FloatRecipe(), the head and FLOAT_DECODER_BLOCKS blocks)."""
    recipe = recipe or FloatRecipe()
    blocks = sorted({int(m.group(1)) for n in proto.graph.node if (m := re.match(r"/model/decoder/blocks\.(\d+)/", n.name))})
    decoder = tuple(f"/model/decoder/blocks.{i}/" for i in blocks[len(blocks) - recipe.decoder_blocks:])
    scopes = tuple(s for s in FLOAT_SCOPES if recipe.head or s != HEAD_SCOPE) + decoder
    names = [n.name for n in proto.graph.node
             if n.op_type in FLOAT_OP_TYPES or any(part in n.name for part in FLOAT_NAME_PARTS)
             or n.name.startswith(scopes)
             or re.fullmatch(r"/model/[^/]+", n.name)]  # the model's own forward: pooling, fusion
    if expect_cbam and not any("/cbam/" in n for n in names):
        raise ValueError(
            "no CBAM node found by name in the FP32 graph, so its gates could not be kept in float; "
            "export with --exporter torchscript (its node names follow the torch modules)"
        )
    return names


def _method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    if name not in CALIB_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, got {name!r}")
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[name]


def calibrate(fp32_path: Path, batches: Iterable[dict[str, np.ndarray]], method: str, cache_path: Path,
              shared_cache_path: Path) -> None:
    """Run the calibration data through the FP32 model; write its tensor ranges to cache_path, and the same ranges
    with each concat group widened to one range to shared_cache_path."""
    import io

    import onnx
    from onnxruntime.quantization import create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    from calibration.adapters import ort_reader

    with tempfile.TemporaryDirectory(prefix="dualpath-calib-") as tmp:
        calibrator = create_calibrator(
            fp32_path, op_types_to_quantize(), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=_method(method),
            extra_options={"percentile": 99.99} if method == "percentile" else {},
        )
        # Histogram methods (entropy, percentile) get one batch per collect_data call: ONNX Runtime's
        # HistogramCalibrater stacks every call's outputs per tensor with np.asarray, which fails on batches of
        # different sizes (the last, partial one: "inhomogeneous shape"), and keeps them all in memory until then.
        # Its collector merges histograms across calls (and prints a line per call: kept off our log). MinMax merges
        # exact min / max per call: one call, as before.
        with contextlib.redirect_stdout(io.StringIO()):
            for chunk in ([batch] for batch in batches) if method != "minmax" else [batches]:
                calibrator.collect_data(ort_reader(chunk))
        ranges = calibrator.compute_data()
        del calibrator
    save_tensors_data(ranges, cache_path)
    share_concat_ranges(onnx.load(str(fp32_path)), ranges)
    save_tensors_data(ranges, shared_cache_path)


# ONNX Runtime's QDQ quantizer gives these ops' outputs their input's scale (they move values, not change them),
# so a concat input produced by one shares that scale with the op's input: the group must include it.
SCALE_PRESERVING = ("MaxPool", "AveragePool", "Resize", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice")


def concat_groups(proto, skip: set[str] = frozenset()) -> list[set[str]]:
    """Tensors that must share one scale: the inputs and output of each Concat, merged where concats share a
    tensor (a DenseNet block's input feeds every concat of the block), plus the inputs of scale-preserving ops
    that feed them (a transition's pooling, the decoder's upsampling)."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.setdefault(t, t) != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for node in proto.graph.node:
        if node.op_type == "Concat" and node.name not in skip:
            for t in node.input:
                parent[find(t)] = find(node.output[0])
    producers = {o: n for n in proto.graph.node for o in n.output}
    for t in list(parent):  # walk back through chains of scale-preserving ops
        node = producers.get(t)
        while node is not None and node.op_type in SCALE_PRESERVING and node.name not in skip:
            parent[find(node.input[0])] = find(t)
            t, node = node.input[0], producers.get(node.input[0])
    groups: dict[str, set[str]] = {}
    for t in parent:
        groups.setdefault(find(t), set()).add(t)
    return [g for g in groups.values() if len(g) > 1]


def share_concat_ranges(proto, ranges, skip: set[str] = frozenset()) -> int:
    """Widen every concat group's ranges to their union (in place); returns the number of groups."""
    groups = concat_groups(proto, skip or set(float_nodes(proto, expect_cbam=False)))
    for group in groups:
        members = [ranges.data[t] for t in group if t in ranges.data]
        if not members:
            continue
        lo = min(float(np.min(m.range_value[0])) for m in members)
        hi = max(float(np.max(m.range_value[1])) for m in members)
        for m in members:
            m.lowest, m.highest = np.array(lo, np.float32), np.array(hi, np.float32)
    return len(groups)


@contextlib.contextmanager
def _quiet_root_logger():
    """ONNX Runtime's quantizer logs a root-logger warning per un-foldable BatchNormalization ("Axis 1 is out-of-range
    for weight ... with rank 1": DenseNet's pre-activation BNs keep their per-tensor weights) and a hint about
    pre-processing that fails on this graph; hundreds of lines that say nothing to our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(fp32_path: Path, out_path: Path, cache_path: Path, variant: Variant, method: str,
             exclude: Iterable[str]) -> None:
    """Write the QDQ model of `variant` to out_path from the cached ranges (the shared-concat file when the variant
    shares them); `exclude` nodes stay float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from export.atomic import atomic_path

    activation = QuantType.QInt8 if variant.activation == "int8" else QuantType.QUInt8
    with atomic_path(out_path) as tmp, _quiet_root_logger():
        quantize_static(
            fp32_path, tmp, calibration_data_reader=None, calibration_cache_path=cache_path,
            quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=variant.reduce_range, activation_type=activation,
            weight_type=QuantType.QInt8, calibrate_method=_method(method),
            op_types_to_quantize=variant.op_types(), nodes_to_exclude=sorted(set(exclude)),
            extra_options=variant.extra_options(),
        )
        if variant.placement == "weighted-inputs":
            _float_concat_inputs(tmp)


def _float_concat_inputs(path: Path) -> None:
    """A float Concat reads float tensors: where a DequantizeLinear (shared with a Conv that reads the same tensor)
    feeds one, it reads the tensor before its Q/DQ instead (TensorRT would run that DQ alone, an INT8 -> FP16
    reformat, and export.qdq_rules refuses a Concat mixing INT8 and float inputs). Same values up to the rounding."""
    import onnx

    proto = onnx.load(str(path))
    producer = {o: n for n in proto.graph.node for o in n.output}
    init = {i.name for i in proto.graph.initializer}
    changed = False
    for node in proto.graph.node:
        if node.op_type != "Concat":
            continue
        for i, t in enumerate(node.input):
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in init:
                node.input[i] = q.input[0]
                changed = True
    if changed:
        onnx.save(proto, str(path))


def write_variant(source: Path, out_path: Path, ranges: Path, variant: Variant, method: str, fp32_proto,
                  kept: Iterable[str] = ()) -> None:
    """The QDQ model of `variant` from `source` (the FP32 ONNX, or QAT-tuned weights of the same graph): its own float
    recipe plus `kept` in float, and the FP32 model's metadata with its precision."""
    quantize(source, out_path, ranges, variant, method, variant.float_nodes(fp32_proto) + list(kept))
    copy_metadata(fp32_proto, out_path, precision=json.dumps(f"int8-qdq-{variant.name}"),
                  int8_weight_bits=json.dumps(variant.weight_bits))


def copy_metadata(src_proto, path: Path, **updates: str) -> None:
    """quantize_static drops metadata_props: put the FP32 model's back, with `updates` (JSON strings)."""
    import onnx

    from export.atomic import atomic_path

    proto = onnx.load(str(path))
    props = {p.key: p.value for p in src_proto.metadata_props} | updates
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


def qdq_summary(proto) -> dict[str, Any]:
    """What a QDQ graph holds: quantized convs / gemms (int8 weights) and the float ones by name, Q and DQ nodes."""
    initial = {i.name: i for i in proto.graph.initializer}
    dq_of_int_weight = {n.output[0] for n in proto.graph.node
                        if n.op_type == "DequantizeLinear" and n.input[0] in initial and initial[n.input[0]].data_type in (2, 3)}
    weighted = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    quantized = [n for n in weighted if len(n.input) > 1 and n.input[1] in dq_of_int_weight]
    return {
        "conv_gemm_total": len(weighted),
        "conv_gemm_int8": len(quantized),
        "float_conv_gemm": sorted({n.name for n in weighted} - {n.name for n in quantized}),
        "quantize_nodes": sum(n.op_type == "QuantizeLinear" for n in proto.graph.node),
        "dequantize_nodes": sum(n.op_type == "DequantizeLinear" for n in proto.graph.node),
    }
