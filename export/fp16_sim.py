"""What TensorRT does with the layers a QDQ model keeps out of INT8, simulated for ONNX Runtime on a CPU.

A TensorRT engine built with FP16 enabled (`trtexec --int8 --fp16`, as jetson/build_engine.sh builds it) runs every
layer the Q/DQ nodes do not put in INT8 in FP16, not FP32 (TensorRT developer guide, "Explicit Quantization": layers
outside Q/DQ run in the precision the builder allows). The s8 QDQ model's drift measured in FP32 by ONNX Runtime
misses that rounding. simulate_fp16_float_layers writes a copy of the QDQ model in which
  - the Q/DQ nodes and the layers TensorRT runs in INT8 (every activation input a DequantizeLinear output:
    quantized convs / gemms, pooling and concatenations between Q/DQ) are left as they are;
  - every other ("float") node sees fp16 numbers: its float constants are rounded to fp16, and every tensor it
    reads or writes goes through Cast(fp16) -> Cast(fp32), so values are stored in fp16 between layers while the
    arithmetic inside a layer is fp32 (as TensorRT's FP16 kernels accumulate in FP32).
Why not simply convert the float nodes to fp16 (onnxruntime.transformers.float16 with Q/DQ blocked)? It loads, but
ONNX Runtime's CPU provider has no fp16 kernels for Conv, BatchNormalization, Relu, pooling, Gemm ... and its
InsertCastTransformer silently runs them in fp32 with the casts between them removed (measured on ORT 1.32, x86:
of the 43 float nodes of the tiny s8 model, one Concat kept an fp16 output), so only the borders would be rounded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

Q, DQ = "QuantizeLinear", "DequantizeLinear"


def int8_nodes(proto) -> set[str]:
    """Nodes TensorRT runs in INT8: Q / DQ and every node whose non-constant inputs all come from DequantizeLinear."""
    graph = proto.graph
    producer = {o: n for n in graph.node for o in n.output}
    consts = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    names = set()
    for node in graph.node:
        acts = [t for t in node.input if t and t not in consts]
        if node.op_type in (Q, DQ, "Constant") or (acts and all(t in producer and producer[t].op_type == DQ for t in acts)):
            names.add(node.name)
    return names


def _float_tensors(proto) -> set[str]:
    """Names of float32 tensors (graph inputs / outputs, value_info after shape inference, float initializers)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    names = {v.name for v in infos if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return names | {i.name for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}


def simulate_fp16_float_layers(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Write to `dst` the QDQ model `src` with its float layers in fp16 (module docstring); returns
    {"int8_nodes", "fp16_nodes", "fp16_op_types", "rounded_tensors", "rounded_constants"}."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from export.atomic import atomic_path

    proto = onnx.load(str(src))
    graph = proto.graph
    keep = int8_nodes(proto)
    floats = _float_tensors(proto)
    inits = {i.name: i for i in graph.initializer}
    float_nodes = [n for n in graph.node if n.name not in keep]
    rounded: dict[str, str] = {}  # tensor -> its fp16-rounded copy
    new_nodes, new_inits = [], []

    def rounding(name: str) -> str:
        if name not in rounded:
            half, back = f"{name}__fp16", f"{name}__fp16sim"
            new_nodes.append(helper.make_node("Cast", [name], [half], name=f"{half}_Cast", to=TensorProto.FLOAT16))
            new_nodes.append(helper.make_node("Cast", [half], [back], name=f"{back}_Cast", to=TensorProto.FLOAT))
            rounded[name] = back
        return rounded[name]

    # a graph output a float layer writes: the layer writes NAME__raw, NAME is its fp16-rounded value
    float_names = {n.name for n in float_nodes}
    for out in graph.output:
        producer = next((n for n in graph.node if out.name in n.output), None)
        if producer is None or producer.name not in float_names:
            continue
        raw = f"{out.name}__raw"
        for n in graph.node:
            n.output[:] = [raw if o == out.name else o for o in n.output]
            n.input[:] = [raw if t == out.name else t for t in n.input]
        new_nodes.append(helper.make_node("Cast", [raw], [f"{raw}__fp16"], name=f"{raw}__fp16_Cast", to=TensorProto.FLOAT16))
        new_nodes.append(helper.make_node("Cast", [f"{raw}__fp16"], [out.name], name=f"{out.name}__fp16sim_Cast",
                                          to=TensorProto.FLOAT))
        floats.add(raw)
        rounded[raw] = out.name  # readers of the raw value read the rounded one, as in fp16
    n_consts = 0
    for node in float_nodes:
        for i, name in enumerate(node.input):
            if not name or name not in floats:
                continue
            if name in inits:  # a float constant of a float layer: its fp16 value
                copy = f"{name}__fp16const"
                if copy not in {t.name for t in new_inits}:
                    value = numpy_helper.to_array(inits[name]).astype(np.float16).astype(np.float32)
                    new_inits.append(numpy_helper.from_array(value, copy))
                    n_consts += 1
                node.input[i] = copy
            else:
                node.input[i] = rounding(name)
    # what the float layers write and INT8 / Q nodes read is stored in fp16 too
    produced = {o for n in float_nodes for o in n.output if o in floats}
    for node in graph.node:
        if node.name in keep:
            for i, name in enumerate(node.input):
                if name in produced:
                    node.input[i] = rounding(name)
    graph.node.extend(new_nodes)
    graph.initializer.extend(new_inits)
    used = {t for n in graph.node for t in n.input}
    unused = [i for i in graph.initializer if i.name not in used]  # the fp32 originals of the rounded constants
    for init in unused:
        graph.initializer.remove(init)
    _toposort(graph)
    onnx.checker.check_model(proto)
    with atomic_path(Path(dst)) as tmp:
        onnx.save(proto, str(tmp))
    return {"int8_nodes": len(keep), "fp16_nodes": len(float_nodes),
            "fp16_op_types": sorted({n.op_type for n in float_nodes}), "rounded_tensors": len(rounded),
            "rounded_constants": n_consts}


def _toposort(graph) -> None:
    """Order the nodes so each comes after the producers of its inputs (the Casts were appended at the end)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(t in available for t in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"cycle or missing input near {rest[0].name}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
