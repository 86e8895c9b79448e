"""TensorRT's rules for an explicitly quantized (QDQ) ONNX graph, checked on the graph itself.

    violations = check_tensorrt_qdq(onnx.load("model_int8_s8.onnx"))    # [] when TensorRT can build it as meant
    recipe |= tensorrt_rules_recipe(path)                               # {"tensorrt_rules": "pass" | [violations]}

The rules, each with where it comes from (TensorRT developer guide, "Working with Quantized Types" / "Explicit
Quantization": https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html):
1. INT8 only, zero point 0: TensorRT quantizes symmetrically, INT8 activations in [-128, 127], weights in
   [-127, 127], zero point 0. A uint8 Q/DQ, a non-zero zero point, or an int32 DequantizeLinear (ONNX Runtime's
   quantized Conv / Gemm bias) is refused by its ONNX parser ("only activation types allowed as input to this
   layer": onnx/onnx-tensorrt#850, microsoft/onnxruntime#14229; ONNX Runtime's fix is extra_options
   QuantizeBias=False, which keeps biases float for TensorRT to quantize itself).
2. Weights per-channel along the output-channel axis (Conv: 0, ConvTranspose: 1, Gemm: 0 with transB else 1,
   MatMul: the last), one scale per output channel, values in [-127, 127].
3. Concat: TensorRT compares the scales it propagates through a Concat for equality, and runs it as a plain INT8
   copy only when every input's DQ scale and the output's Q scale are one. A quantized Concat with float inputs
   mixes precisions (a reformat per call).
4. Fusions: the guide's placement recommendations say to quantize the inputs of weighted ops and by default not
   their outputs, and not to simulate BatchNormalization / ReLU fusions, "because TensorRT optimizations guarantee
   to preserve the arithmetic semantics of these operations": it fuses Conv + BatchNormalization + ReLU itself
   (its figure "Batch normalization is fused with convolution and ReLU"), and "the extra pair of Q/DQ operators
   forces the separation" of the ops it sits between (its figure on sub-optimal fusions). So a Q/DQ pair on the
   edge Conv -> BatchNormalization, Conv -> Relu or BatchNormalization -> Relu (where the first op's only consumer
   is that Q, so the two could fuse) is refused: quantize after the ReLU instead.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

Q, DQ = "QuantizeLinear", "DequantizeLinear"
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# (producer, consumer) op pairs TensorRT fuses when no Q/DQ pair sits between them (rule 4).
FUSIBLE = {("Conv", "BatchNormalization"), ("Conv", "Relu"), ("BatchNormalization", "Relu"),
           ("ConvTranspose", "BatchNormalization"), ("ConvTranspose", "Relu")}
SCALE_RTOL = 1e-6  # "equal" scales: the same float up to rounding of the file's float32


class _Graph:
    """Lookups over one ONNX graph: constants (initializers and Constant nodes), producers, consumers."""

    def __init__(self, proto) -> None:
        from onnx import numpy_helper

        graph = proto.graph
        self.nodes = list(graph.node)
        self.const: dict[str, Any] = {i.name: i for i in graph.initializer}
        for node in self.nodes:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.const[node.output[0]] = node.attribute[0].t
        self._np = numpy_helper.to_array
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def array(self, name: str) -> np.ndarray | None:
        return self._np(self.const[name]) if name in self.const else None

    def dtype(self, name: str) -> int | None:
        return self.const[name].data_type if name in self.const else None


def _label(node) -> str:
    return f"{node.op_type} '{node.name or node.output[0]}'"


def _attr(node, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _zero_point(g: _Graph, node) -> tuple[int | None, np.ndarray | None]:
    name = node.input[2] if len(node.input) > 2 and node.input[2] else None
    return (g.dtype(name), g.array(name)) if name else (None, None)


def check_int8(g: _Graph) -> list[str]:
    """Rule 1: every Q / DQ is INT8 with zero point 0 (and a positive, finite scale)."""
    from onnx import TensorProto

    out = []
    for node in g.nodes:
        if node.op_type not in (Q, DQ):
            continue
        zp_type, zp = _zero_point(g, node)
        x_type = g.dtype(node.input[0]) if node.op_type == DQ else None
        if x_type == TensorProto.INT32:
            out.append(f"{_label(node)} dequantizes an int32 tensor ({node.input[0]}, a quantized bias): TensorRT "
                       "parses only INT8 DequantizeLinear; keep biases float (ONNX Runtime: QuantizeBias=False)")
            continue
        kind = x_type if x_type is not None else zp_type
        if kind is None:
            out.append(f"{_label(node)} has no zero point, so its type defaults to uint8: TensorRT needs int8 "
                       "(an int8 zero point of 0)")
        elif kind != TensorProto.INT8:
            out.append(f"{_label(node)} is {TensorProto.DataType.Name(kind).lower()}, not int8: TensorRT's explicit "
                       "quantization is INT8 with zero point 0 (use symmetric int8 activations)")
        if zp is not None and np.any(zp != 0):
            out.append(f"{_label(node)} has a non-zero zero point ({np.unique(zp)[:4].tolist()}): TensorRT "
                       "quantizes symmetrically (zero point 0)")
        scale = g.array(node.input[1])
        if scale is not None and not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            out.append(f"{_label(node)} has a scale that is not positive and finite")
    return out


def _output_channel_axis(consumer, rank: int) -> int:
    if consumer.op_type == "ConvTranspose":
        return 1
    if consumer.op_type == "Gemm":
        return 0 if _attr(consumer, "transB", 0) else 1
    if consumer.op_type == "MatMul":
        return rank - 1
    return 0  # Conv: (C_out, C_in / group, kH, kW)


def check_weights(g: _Graph) -> list[str]:
    """Rule 2: constant int8 tensors in [-127, 127]; weights of weighted ops per output channel."""
    out = []
    for node in g.nodes:
        if node.op_type != DQ or node.input[0] not in g.const:
            continue
        values = g.array(node.input[0])
        if values.dtype == np.int8 and values.size and int(values.min()) < -127:
            out.append(f"{_label(node)} holds int8 weights down to {int(values.min())}: TensorRT's weights are "
                       "symmetric in [-127, 127] (WeightSymmetric)")
        for consumer in g.consumers[node.output[0]]:
            if consumer.op_type not in WEIGHTED or len(consumer.input) < 2 or consumer.input[1] != node.output[0]:
                continue
            scale = g.array(node.input[1])
            axis = _output_channel_axis(consumer, values.ndim)
            got = _attr(node, "axis", 1)
            got = got + values.ndim if got < 0 else got
            if scale is None or scale.size == 1 and values.shape[axis] > 1:
                out.append(f"{_label(node)} quantizes the weight of {_label(consumer)} per tensor: TensorRT wants "
                           f"one scale per output channel (axis {axis}, {values.shape[axis]} scales)")
            elif got != axis or scale.shape != (values.shape[axis],):
                out.append(f"{_label(node)} quantizes the weight of {_label(consumer)} along axis {got} with "
                           f"{scale.size} scales; the output-channel axis is {axis} ({values.shape[axis]} channels)")
    return out


def _scale_of(g: _Graph, node) -> np.ndarray | None:
    return g.array(node.input[1])


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and np.allclose(a, b, rtol=SCALE_RTOL, atol=0)


def check_concats(g: _Graph) -> list[str]:
    """Rule 3: one scale for each quantized Concat's DQ inputs and output Q; no float input to a quantized one."""
    out = []
    for node in g.nodes:
        if node.op_type != "Concat":
            continue
        producers = [g.producer.get(t) for t in node.input]
        dqs = [p for p in producers if p is not None and p.op_type == DQ]
        floats = [t for t, p in zip(node.input, producers) if p is None or p.op_type != DQ]
        out_qs = [c for c in g.consumers[node.output[0]] if c.op_type == Q]
        if not dqs and not out_qs:
            continue  # a float Concat
        scales = [_scale_of(g, d) for d in dqs]
        if any(not _same(scales[0], s) for s in scales[1:]):
            shown = ", ".join(f"{d.name}: {np.ravel(s)[:1].tolist() if s is not None else '?'}" for d, s in zip(dqs, scales))
            out.append(f"{_label(node)} concatenates INT8 inputs of different scales ({shown}): TensorRT requantizes "
                       "instead of copying; give the concat group one scale")
        ref = scales[0] if scales else None
        for q in out_qs:
            if ref is not None and not _same(ref, _scale_of(g, q)):
                out.append(f"{_label(node)}'s output {_label(q)} uses scale {np.ravel(_scale_of(g, q))[:1].tolist()}, "
                           f"its inputs {np.ravel(ref)[:1].tolist()}: a quantized Concat's output shares its inputs' scale")
        if dqs and floats and out_qs:
            out.append(f"{_label(node)} is quantized but takes float inputs ({', '.join(floats)}) beside INT8 ones: "
                       "quantize every input with the group's scale, or keep the Concat float")
    return out


def check_fusions(g: _Graph) -> list[str]:
    """Rule 4: no Q/DQ pair between ops TensorRT fuses (Conv + BatchNormalization + ReLU)."""
    out = []
    for node in g.nodes:
        if node.op_type not in {a for a, _ in FUSIBLE} or not node.output:
            continue
        consumers = g.consumers[node.output[0]]
        if len(consumers) != 1 or consumers[0].op_type != Q:
            continue  # its output is used in float elsewhere: nothing to fuse
        q = consumers[0]
        for dq in g.consumers[q.output[0]]:
            if dq.op_type != DQ:
                continue
            for after in g.consumers[dq.output[0]]:
                if (node.op_type, after.op_type) in FUSIBLE:
                    out.append(f"{_label(q)} / {_label(dq)} sit between {_label(node)} and {_label(after)}, which "
                               f"TensorRT fuses: the pair splits the {node.op_type}+{after.op_type} fusion "
                               f"(quantize after the {after.op_type} instead)")
    return out


def check_tensorrt_qdq(proto) -> list[str]:
    """Every way this QDQ graph breaks TensorRT's explicit-quantization rules (module docstring), one line each,
    naming the node; [] when it keeps them all."""
    g = _Graph(proto)
    return check_int8(g) + check_weights(g) + check_concats(g) + check_fusions(g)


def tensorrt_rules_recipe(path: str | Path) -> dict[str, Any]:
    """The manifest recipe's entry for a QDQ model meant for TensorRT: {"tensorrt_rules": "pass"} or the list of
    violations."""
    import onnx

    violations = check_tensorrt_qdq(onnx.load(str(path), load_external_data=False))
    return {"tensorrt_rules": violations or "pass"}


def failure_message(name: str, violations: list[str], shown: int = 5) -> str:
    """One message for ExportFailed: how many rules the model breaks, the first few, where the rest are."""
    more = f"; {len(violations) - shown} more in the manifest's recipe" if len(violations) > shown else ""
    return (f"{name} breaks {len(violations)} of TensorRT's Q/DQ rules, so the engine built from it would not be "
            f"the INT8 model measured here: " + "; ".join(violations[:shown]) + more)
