"""export.qdq_rules: each of TensorRT's Q/DQ rules refuses a tiny graph that breaks it, naming the node; the real
tiny s8 / u8 models are checked as the export checks them."""
from __future__ import annotations

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from export.qdq_rules import check_tensorrt_qdq, failure_message, tensorrt_rules_recipe  # noqa: E402

C = 4  # channels of the toy graphs


def _init(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


class Toy:
    """A small QDQ graph written node by node: x -> Q/DQ -> Conv (per-channel int8 weight) -> ..."""

    def __init__(self):
        self.nodes, self.inits = [], []

    def qdq(self, tensor, name, scale=0.05, zp=0, zp_dtype=np.int8):
        self.inits += [_init(f"{name}_s", np.float32(scale)), _init(f"{name}_z", zp, zp_dtype)]
        self.nodes += [helper.make_node("QuantizeLinear", [tensor, f"{name}_s", f"{name}_z"], [f"{name}_q"], name=f"{name}_Q"),
                       helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"],
                                        name=f"{name}_DQ")]
        return f"{name}_dq"

    def weight(self, name, values=None, scale=None, axis=0, bias_int32=False):
        values = np.ones((C, C, 1, 1), np.int8) if values is None else values
        scale = np.full(C, 0.01, np.float32) if scale is None else scale
        zp = np.zeros(np.shape(scale), np.int8)
        self.inits += [_init(f"{name}_w", values), _init(f"{name}_ws", scale), _init(f"{name}_wz", zp)]
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_w", f"{name}_ws", f"{name}_wz"], [f"{name}_wdq"],
                                           name=f"{name}_weight_DQ", axis=axis))
        inputs = [f"{name}_wdq"]
        if bias_int32:
            self.inits += [_init(f"{name}_b", np.zeros(C), np.int32), _init(f"{name}_bs", np.full(C, 1e-4, np.float32))]
            self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_b", f"{name}_bs"], [f"{name}_bdq"],
                                               name=f"{name}_bias_DQ", axis=0))
            inputs.append(f"{name}_bdq")
        return inputs

    def conv(self, x, name, **weight):
        self.nodes.append(helper.make_node("Conv", [x, *self.weight(name, **weight)], [f"{name}_y"], name=name))
        return f"{name}_y"

    def op(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, list(inputs), [f"{name}_y"], name=name, **attrs))
        return f"{name}_y"

    def bn(self, x, name):
        params = [f"{name}_{p}" for p in ("scale", "bias", "mean", "var")]
        self.inits += [_init(p, np.ones(C) if p.endswith(("scale", "var")) else np.zeros(C), np.float32) for p in params]
        return self.op("BatchNormalization", [x, *params], name)

    def model(self, out):
        graph = helper.make_graph(self.nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, 4, 4])],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def good() -> Toy:
    """x -> Q/DQ -> Conv -> Relu -> Q/DQ: what TensorRT wants."""
    t = Toy()
    t.out = t.qdq(t.op("Relu", [t.conv(t.qdq("x", "in"), "conv1")], "relu1"), "act1")
    return t


def test_a_graph_that_keeps_the_rules_passes():
    assert check_tensorrt_qdq(good().model(good().out)) == []


def _only(violations, node, words):
    assert violations, "the graph was accepted"
    assert any(node in v and re.search(words, v) for v in violations), violations
    return violations


def test_uint8_activations_are_refused():
    t = Toy()
    out = t.conv(t.qdq("x", "in", zp=128, zp_dtype=np.uint8), "conv1")
    v = check_tensorrt_qdq(t.model(out))
    _only(v, "in_Q", r"uint8, not int8")
    _only(v, "in_DQ", r"non-zero zero point")


def test_a_non_zero_int8_zero_point_is_refused():
    t = Toy()
    _only(check_tensorrt_qdq(t.model(t.conv(t.qdq("x", "in", zp=3), "conv1"))), "in_Q", r"non-zero zero point \(\[3\]\)")


def test_a_missing_zero_point_defaults_to_uint8_and_is_refused():
    t = Toy()
    t.inits.append(_init("s", np.float32(0.1)))
    t.nodes.append(helper.make_node("QuantizeLinear", ["x", "s"], ["xq"], name="bare_Q"))
    _only(check_tensorrt_qdq(t.model("xq")), "bare_Q", r"no zero point")


def test_an_int32_bias_dequantize_is_refused():
    t = Toy()
    out = t.conv(t.qdq("x", "in"), "conv1", bias_int32=True)
    _only(check_tensorrt_qdq(t.model(out)), "conv1_bias_DQ", r"int32 .*QuantizeBias=False")


def test_per_tensor_weights_are_refused():
    t = Toy()
    out = t.conv(t.qdq("x", "in"), "conv1", scale=np.float32(0.01))
    _only(check_tensorrt_qdq(t.model(out)), "conv1_weight_DQ", r"Conv 'conv1' per tensor")


def test_weights_along_the_wrong_axis_are_refused():
    t = Toy()
    out = t.conv(t.qdq("x", "in"), "conv1", values=np.ones((C, 2, 1, 1), np.int8), scale=np.full(2, 0.01, np.float32),
                 axis=1)
    _only(check_tensorrt_qdq(t.model(out)), "conv1_weight_DQ", r"axis 1 .*output-channel axis is 0")


def test_int8_weights_of_minus_128_are_refused():
    t = Toy()
    values = np.ones((C, C, 1, 1), np.int8)
    values[0, 0] = -128
    _only(check_tensorrt_qdq(t.model(t.conv(t.qdq("x", "in"), "conv1", values=values))), "conv1_weight_DQ", r"-128")


def _concat(scales, out_scale=None, float_input=False) -> list[str]:
    t = Toy()
    inputs = [t.qdq("x", f"in{i}", scale=s) for i, s in enumerate(scales)]
    if float_input:
        inputs.append(t.op("Relu", ["x"], "float_branch"))
    cat = t.op("Concat", inputs, "cat", axis=1)
    out = t.qdq(cat, "cat_out", scale=scales[0] if out_scale is None else out_scale)
    return check_tensorrt_qdq(t.model(out))


def test_concat_inputs_of_different_scales_are_refused():
    assert _concat([0.05, 0.05]) == []
    _only(_concat([0.05, 0.07]), "cat", r"different scales")


def test_a_concat_output_scale_other_than_its_inputs_is_refused():
    _only(_concat([0.05, 0.05], out_scale=0.1), "cat_out_Q", r"output shares its inputs' scale")


def test_a_quantized_concat_with_a_float_input_is_refused():
    _only(_concat([0.05], float_input=True), "cat", r"float inputs \(float_branch_y\)")


def test_a_float_concat_of_a_dequantized_and_a_float_tensor_is_not_a_violation():
    t = Toy()
    cat = t.op("Concat", [t.qdq("x", "in"), t.op("Relu", ["x"], "float_branch")], "cat", axis=1)
    assert check_tensorrt_qdq(t.model(cat)) == []  # runs in float: nothing to requantize


@pytest.mark.parametrize("first,second", [("Conv", "Relu"), ("Conv", "BatchNormalization"), ("BatchNormalization", "Relu")])
def test_a_qdq_pair_between_fusible_ops_is_refused(first, second):
    t = Toy()
    x = t.qdq("x", "in")
    y = t.conv(x, "first") if first == "Conv" else t.bn(x, "first")
    split = t.qdq(y, "split")
    out = t.bn(split, "second") if second == "BatchNormalization" else t.op("Relu", [split], "second")
    v = check_tensorrt_qdq(t.model(out))
    _only(v, "split_Q", rf"between {first} 'first' and {second} 'second'.*{first}\+{second} fusion")


def test_a_qdq_pair_after_a_conv_whose_output_is_also_used_in_float_is_not_a_fusion_violation():
    t = Toy()
    y = t.conv(t.qdq("x", "in"), "conv1")
    t.nodes.append(helper.make_node("QuantizeLinear", [y, "in_s", "in_z"], ["yq"], name="y_Q"))
    t.nodes.append(helper.make_node("DequantizeLinear", ["yq", "in_s", "in_z"], ["ydq"], name="y_DQ"))
    relu = t.op("Relu", ["ydq"], "relu")
    out = t.op("Add", [relu, y], "residual")  # conv1's output is read in float too: no Conv+ReLU fusion to split
    assert check_tensorrt_qdq(t.model(out)) == []


def test_the_recipe_entry_and_the_failure_message(tmp_path):
    ok, bad = tmp_path / "ok.onnx", tmp_path / "bad.onnx"
    onnx.save(good().model(good().out), str(ok))
    t = Toy()
    onnx.save(t.model(t.conv(t.qdq("x", "in", zp=128, zp_dtype=np.uint8), "conv1")), str(bad))
    assert tensorrt_rules_recipe(ok) == {"tensorrt_rules": "pass"}
    violations = tensorrt_rules_recipe(bad)["tensorrt_rules"]
    assert isinstance(violations, list) and len(violations) == 4
    msg = failure_message("bad.onnx", violations, shown=1)
    assert msg.startswith("bad.onnx breaks 4 of TensorRT's Q/DQ rules") and "3 more in the manifest's recipe" in msg


# The real tiny model, quantized as the export quantizes it


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from tiny_qdq import tiny_qdq

    return tiny_qdq(tmp_path_factory.mktemp("tiny_qdq"))


def _kinds(violations):
    return {k for v in violations for k, pat in KINDS.items() if re.search(pat, v)}


KINDS = {"int32 bias": r"int32", "uint8": r"uint8", "zero point": r"non-zero zero point", "weights": r"weight",
         "concat": r"Concat '", "fusion": r"fusion"}


def test_the_u8_model_is_refused_for_its_uint8_activations(real):
    v = check_tensorrt_qdq(onnx.load(str(real["u8"])))
    assert {"uint8", "zero point"} <= _kinds(v)


def test_the_s8_model_passes(real):
    """The export's s8 model (TensorRT placement: float biases, Q/DQ where weighted ops, concatenations and pooling
    read activations) keeps every rule."""
    assert check_tensorrt_qdq(onnx.load(str(real["s8"]))) == []


def test_the_older_s8_recipe_is_refused(real, tmp_path):
    """The s8 recipe before TensorRT placement (int32 biases, Q/DQ on every Conv / BN output before its ReLU) breaks
    the bias and fusion rules."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from export import quantize_onnx as q

    fp32 = real["fp32"]
    out = tmp_path / "s8_old.onnx"
    with q._quiet_root_logger():
        quantize_static(fp32, out, calibration_data_reader=None, calibration_cache_path=real["ranges_shared"],
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=q.op_types_to_quantize(),
                        nodes_to_exclude=q.VARIANTS["s8"].float_nodes(onnx.load(str(fp32))),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    proto = onnx.load(str(out))
    assert {"int32 bias", "fusion"} <= _kinds(check_tensorrt_qdq(proto))
    assert q.qdq_summary(proto)["conv_gemm_int8"] == q.qdq_summary(onnx.load(str(real["s8"])))["conv_gemm_int8"]
