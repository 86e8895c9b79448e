"""The model must trace to a graph of standard ops with a free batch dimension (ONNX / TensorRT / OpenVINO)."""
from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.export import Dim, export

from dualpath.contract import INPUT_NAME, OUTPUT_PROBS, OUTPUT_RECON
from dualpath.model import build_model

# ATen ops (torch.export's ATen graph, before decomposition) that map 1:1 onto Conv, BatchNormalization,
# Relu, MaxPool / AveragePool, Resize, Concat, GlobalAveragePool / GlobalMaxPool, ReduceMean / ReduceMax,
# Sigmoid, Tanh, Gemm, Flatten and elementwise arithmetic (dropout and detach are identities in eval).
STANDARD_OPS = {
    "aten.conv2d.default", "aten.batch_norm.default", "aten.relu.default", "aten.relu_.default",
    "aten.max_pool2d.default", "aten.avg_pool2d.default", "aten.upsample_nearest2d.vec", "aten.cat.default",
    "aten.adaptive_avg_pool2d.default", "aten.adaptive_max_pool2d.default", "aten.mean.dim", "aten.amax.default",
    "aten.sigmoid.default", "aten.tanh.default", "aten.linear.default", "aten.flatten.using_ints",
    "aten.add.Tensor", "aten.sub.Tensor", "aten.mul.Tensor", "aten.div.Tensor",
    "aten.dropout.default", "aten.detach.default", "<built-in function getitem>",
}


class _Deployed(torch.nn.Module):
    """What the exporter ships: sigmoid probabilities and the reconstruction."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):
        out = self.model(image)
        return torch.sigmoid(out.logits), out.recon


@pytest.fixture(scope="module", params=[{}, {"stem": "3x3", "fusion_norm": True}], ids=["paper", "3x3+fusion_norm"])
def exported(request):
    torch.manual_seed(0)
    from dualpath.model import ModelConfig

    model = build_model(ModelConfig(backbone="densenet_tiny", hidden=16, **request.param)).eval()
    program = export(_Deployed(model), (torch.randn(2, 3, 64, 64),), dynamic_shapes={"image": {0: Dim("batch")}})
    return model, program


def test_exports_with_a_dynamic_batch(exported):
    model, program = exported
    for n in (1, 5):
        x = torch.randn(n, 3, 64, 64)
        probs, recon = program.module()(x)
        with torch.no_grad():
            ref = model(x)
        assert torch.allclose(probs, torch.sigmoid(ref.logits), atol=1e-5)
        assert torch.allclose(recon, ref.recon, atol=1e-5)


def test_graph_holds_only_standard_ops(exported):
    _, program = exported
    ops = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert ops <= STANDARD_OPS, f"non-standard ops: {sorted(ops - STANDARD_OPS)}"


@pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxscript") is None,
    reason="onnx / onnxscript not installed (the 'export' extra); torch.export above covers tracing",
)
def test_onnx_export_with_dynamic_batch(exported, tmp_path):
    import onnx

    model, _ = exported
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        _Deployed(model), (torch.randn(2, 3, 64, 64),), str(path),
        input_names=[INPUT_NAME], output_names=[OUTPUT_PROBS, OUTPUT_RECON],
        dynamic_shapes={"image": {0: Dim("batch")}}, dynamo=True,
    )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # symbolic, not fixed to 2
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        x = torch.randn(3, 3, 64, 64)
        probs, recon = ort.InferenceSession(str(path)).run(None, {INPUT_NAME: x.numpy()})
        with torch.no_grad():
            ref = model(x)
        assert torch.allclose(torch.from_numpy(probs), torch.sigmoid(ref.logits), atol=1e-4)
        assert torch.allclose(torch.from_numpy(recon), ref.recon, atol=1e-4)
