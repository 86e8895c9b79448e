"""export.fp16_sim: the s8 model's float layers run on fp16 numbers (what a TensorRT engine built with --fp16 does),
its INT8 part untouched, and ONNX Runtime runs it."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from export.fp16_sim import int8_nodes, simulate_fp16_float_layers  # noqa: E402


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from tiny_qdq import tiny_qdq

    return tiny_qdq(tmp_path_factory.mktemp("tiny_qdq"))


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x})))


def test_float_layers_see_fp16_numbers_and_the_int8_part_is_kept(real, tmp_path):
    from tiny_qdq import calibration_batches

    sim = tmp_path / "s8_fp16sim.onnx"
    info = simulate_fp16_float_layers(real["s8"], sim)
    src, out = onnx.load(str(real["s8"])), onnx.load(str(sim))
    assert info["int8_nodes"] == len(int8_nodes(src)) and info["fp16_nodes"] > 0
    assert {"Conv", "Sigmoid", "Tanh"} <= set(info["fp16_op_types"])  # the float decoder blocks and the heads
    count = lambda p, op: sum(n.op_type == op for n in p.graph.node)  # noqa: E731
    for op in ("QuantizeLinear", "DequantizeLinear", "Conv"):
        assert count(out, op) == count(src, op)
    assert count(out, "Cast") == 2 * info["rounded_tensors"]
    assert [o.name for o in out.graph.output] == [o.name for o in src.graph.output]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in out.graph.input)

    x = next(iter(calibration_batches(8, 8)))["image"]
    a, b = _run(real["s8"], x), _run(sim, x)
    for name in a:
        diff = np.abs(a[name] - b[name]).max()
        assert 0 < diff < 0.05, (name, diff)  # rounded (ORT kept the casts), but only at fp16's precision


def test_a_model_without_qdq_is_rounded_everywhere(real, tmp_path):
    info = simulate_fp16_float_layers(real["fp32"], tmp_path / "fp32_fp16sim.onnx")
    assert info["int8_nodes"] == 0 and info["fp16_nodes"] == len(onnx.load(str(real["fp32"])).graph.node)
