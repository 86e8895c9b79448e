"""Quantization-aware fine-tuning (export.qat, export.qat_step) at tiny size: the mirror of the QDQ graph, the time-boxed
fine-tune, the rebuilt artifacts, accuracy control's fallback, and the manifest's record."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from export_helpers import make_checkpoint  # noqa: E402


def _images(n=8):
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range

    return render_range(SceneConfig(), 2_000_003, 0, n)["noisy"]


@pytest.fixture(scope="module")
def qat_export(tmp_path_factory):
    """A tiny export with --qat always (s8 and u8 QDQ, tensorrt script), and the PTQ models kept aside."""
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export

    root = tmp_path_factory.mktemp("qat")
    config = ExportConfig(checkpoint=make_checkpoint(root / "best.pt"), out=root / "out", int8=True,
                          backends=("onnx", "tensorrt"), qat="always", qat_minutes=0.05, qat_scenes=64, calib_n=16,
                          drift_n=20, severities=(), parity_n=8, data_root=root / "data", threads=1)
    logs: list[str] = []
    manifest = run_export(config, log=logs.append)
    return config, manifest, logs


@pytest.fixture(scope="module")
def ptq_export(tmp_path_factory):
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export

    root = tmp_path_factory.mktemp("ptq")
    config = ExportConfig(checkpoint=make_checkpoint(root / "best.pt"), out=root / "out", int8=True,
                          backends=("onnx",), qat="never", calib_n=16, drift_n=20, severities=(), parity_n=8,
                          data_root=root / "data", threads=1)
    run_export(config, log=lambda _: None)
    return config


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["s8", "u8"])
def test_mirror_reproduces_the_qdq_graph(ptq_export, variant):
    """Every quantized tensor of the graph is simulated, and the fake-quantized torch model is far closer to the QDQ
    model as written than the float model is."""
    from export import qat
    from train.checkpoint import load_model
    from dualpath import contract

    model, _ = load_model(ptq_export.checkpoint)
    path = ptq_export.out / f"model_int8_{variant}.onnx"
    plan = qat.plan_from_qdq(onnx.load(str(path)), model)
    assert plan.missing == []
    proto = onnx.load(str(path))
    activation_q = sum(n.op_type == "QuantizeLinear" and not n.input[0].endswith(("weight", "bias"))
                       and n.input[0] not in {i.name for i in proto.graph.initializer} for n in proto.graph.node)
    assert plan.summary()["conv_weights"] == len([n for n in proto.graph.node if n.op_type == "Conv"
                                                  and n.name not in qat_float_convs(proto)])
    producer = {o: n for n in proto.graph.node for o in n.output}
    int8_gemms = [n for n in proto.graph.node if n.op_type == "Gemm"
                  and getattr(producer.get(n.input[1]), "op_type", None) == "DequantizeLinear"]
    assert plan.summary()["gemm_weights"] == len(int8_gemms)  # s8: the head's two Gemms (per channel); u8: none
    assert len(plan.inputs) + len(plan.outputs) + len(plan.on_grid) >= activation_q
    images = _images()
    mirrored = qat.mirror_parity(model, plan, path, images)
    import onnxruntime as ort

    probs_q, recon_q = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": contract.preprocess(images)})
    with torch.no_grad():
        out = model(torch.from_numpy(contract.preprocess(images)))
    float_probs = np.abs(torch.sigmoid(out.logits).numpy() - probs_q).max()
    float_recon = np.abs(out.recon.numpy() - recon_q).max()
    assert mirrored["probs_max_abs_diff"] < 0.5 * float_probs
    assert mirrored["recon_max_abs_diff"] < 0.5 * float_recon


def qat_float_convs(proto) -> set[str]:
    from export.quantize_onnx import qdq_summary

    return set(qdq_summary(proto)["float_conv_gemm"])


@pytest.mark.slow
def test_fake_quantization_is_removed_and_weights_kept(ptq_export):
    from export import qat
    from train.checkpoint import load_model

    model, _ = load_model(ptq_export.checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plan = qat.plan_from_qdq(onnx.load(str(ptq_export.out / "model_int8_s8.onnx")), model)
    from dualpath import contract

    x = torch.from_numpy(contract.preprocess(_images(2)))
    with torch.no_grad():
        plain = model(x).logits
        with qat.fake_quantized(model, plan):
            quantized = model(x).logits
        again = model(x).logits
    assert not torch.equal(plain, quantized)  # the fake quantization did something
    assert torch.equal(plain, again)  # ... and left nothing behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


@pytest.mark.slow
def test_a_graph_the_model_cannot_mirror_is_refused(ptq_export):
    """A Q/DQ pair between two functional ops that change values (global pooling -> flatten) has no torch module to
    hook: the plan lists it as missing and fake quantization refuses to start (QAT would train for another graph)."""
    from onnx import helper, numpy_helper

    from export import qat
    from train.checkpoint import load_model

    model, _ = load_model(ptq_export.checkpoint)
    proto = onnx.load(str(ptq_export.out / "model_int8_s8.onnx"))
    g = proto.graph
    gap = next(n for n in g.node if n.op_type == "GlobalAveragePool" and n.name.count("/") == 2)  # /model/GAP
    t = gap.output[0]
    g.initializer.extend([numpy_helper.from_array(np.array(0.05, np.float32), "probe_scale"),
                          numpy_helper.from_array(np.array(0, np.int8), "probe_zero")])
    for node in g.node:
        node.input[:] = [f"{t}_probe_dq" if x == t else x for x in node.input]
    g.node.extend([helper.make_node("QuantizeLinear", [t, "probe_scale", "probe_zero"], [f"{t}_probe_q"], "probe_Q"),
                   helper.make_node("DequantizeLinear", [f"{t}_probe_q", "probe_scale", "probe_zero"],
                                    [f"{t}_probe_dq"], "probe_DQ")])
    plan = qat.plan_from_qdq(proto, model)
    assert plan.missing == [t]
    with pytest.raises(ValueError, match="cannot mirror"):
        with qat.fake_quantized(model, plan):
            pass


def test_qat_config_is_checked():
    from export.qat import QATConfig

    for bad in ({"minutes": 0}, {"lr_fraction": 2}, {"batch_size": 0}, {"objective": "magic"}, {"max_steps": -1}):
        with pytest.raises(ValueError):
            QATConfig(**bad)


def test_export_config_checks_qat_flags(tmp_path):
    from export.config import export_config as ExportConfig

    base = dict(checkpoint=tmp_path / "c.pt", out=tmp_path / "o")
    for bad, match in (({"qat": "sometimes", "int8": True}, "qat must be"), ({"qat": "always"}, "--int8"),
                       ({"qat_minutes": -1, "int8": True}, "qat_minutes"),
                       ({"qat_scenes": 4, "int8": True}, "qat_scenes"),
                       ({"qat_objective": "x", "int8": True}, "qat_objective")):
        with pytest.raises(ValueError, match=match):
            ExportConfig(**base, **bad)


def test_qat_scenes_are_training_scenes_only():
    from calibration import ACCURACY_CONTROL_SEED, CALIBRATION_SEED
    from export.qat import training_scenes
    from runtime.drift.sets import DRIFT_SEED

    arrays, info = training_scenes({"data_seed": 0, "extra_seed": 5, "extra_scenes": 100}, 8)
    assert info == {"seed": 5, "indices": [0, 8], "n": 8, "trained_on": True} and len(arrays["noisy"]) == 8
    for seed in (CALIBRATION_SEED, ACCURACY_CONTROL_SEED, DRIFT_SEED, 0):
        with pytest.raises(ValueError, match="not a training seed"):
            training_scenes({"data_seed": 0, "extra_seed": seed}, 8)


@pytest.mark.slow
def test_qat_export_rebuilds_every_int8_artifact(qat_export):
    config, manifest, logs = qat_export
    record = manifest["qat"]
    assert record["mirrors"] == "model_int8_s8.onnx" and record["plan"]["missing"] == 0
    assert record["steps"] >= 1 and record["training_scenes"]["seed"] == 1 and record["objective"] == "train"
    assert 0 < record["seconds"] < 60
    for name in ("model_int8_s8.onnx", "model_int8_u8.onnx"):
        assert manifest["recipes"][name]["weights_from"] == "qat"
        assert manifest["recipes"][name]["qat"]["steps"] == record["steps"]
        assert name in manifest["drift"]  # its drift is measured like any artifact's
    # the shipped s8 graph computes what the tuned, fake-quantized torch model computed
    after = record["mirror_parity_after"]
    assert after["probs_max_abs_diff"] < 1e-3 and after["recon_max_abs_diff"] < 1e-2
    assert any(line.startswith("QAT:") and "steps in" in line for line in logs)


@pytest.mark.slow
def test_qat_s8_model_keeps_tensorrt_rules(qat_export):
    from export.qdq_rules import check_tensorrt_qdq

    config, manifest, _ = qat_export
    assert check_tensorrt_qdq(onnx.load(str(config.out / "model_int8_s8.onnx"))) == []


@pytest.mark.slow
def test_qat_weights_differ_from_ptq(qat_export, ptq_export):
    """The rebuilt s8 model holds other int8 weights than post-training quantization of the same checkpoint."""
    from onnx import numpy_helper

    def weights(path):
        return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer
                if i.name.endswith("_quantized") and i.data_type == onnx.TensorProto.INT8}

    qat_w = weights(qat_export[0].out / "model_int8_s8.onnx")
    ptq_w = weights(ptq_export.out / "model_int8_s8.onnx")
    shared = set(qat_w) & set(ptq_w)
    assert shared and any(not np.array_equal(qat_w[k], ptq_w[k]) for k in shared)


@pytest.mark.slow
def test_accuracy_control_falls_back_to_qat(tmp_path):
    """PTQ past a budget it cannot meet: QAT is tried next (and, missing too, the layer rounds run on its weights);
    the rounds and the manifest say which weights were shipped."""
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export
    from runtime.drift.budgets import Budget

    config = ExportConfig(checkpoint=make_checkpoint(tmp_path / "best.pt"), out=tmp_path / "out", int8=True,
                          backends=("onnx",), qdq_variants=("s8",), accuracy_control=True, qat_minutes=0.03,
                          qat_scenes=64, min_int8_share=0.95, calib_n=16, drift_n=20, severities=(), parity_n=8,
                          data_root=tmp_path / "data", threads=1, budgets={"label_flip_rate": Budget("label_flip_rate", abs=0.0)})
    logs: list[str] = []
    manifest = run_export(config, log=logs.append)
    r = manifest["accuracy_control"]["artifacts"]["model_int8_s8.onnx"]
    first, second = r["rounds"][:2]
    assert {first["weights"], second["weights"]} == {"ptq", "qat"}, r["rounds"]
    # the layer rounds continue from the weights that came closer; the other round is listed first
    assert r["shipped"] == second["weights"] and (second["worst"] <= first["worst"])
    assert manifest["recipes"]["model_int8_s8.onnx"]["weights_from"] == r["shipped"]
    assert "qat" in manifest and any("quantization-aware fine-tuning" in line for line in logs)
    saved = json.loads((config.out / "manifest.json").read_text())
    assert saved["accuracy_control"]["artifacts"]["model_int8_s8.onnx"]["shipped"] == r["shipped"]


@pytest.mark.slow
def test_qat_never_leaves_ptq(tmp_path):
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export
    from runtime.drift.budgets import Budget

    config = ExportConfig(checkpoint=make_checkpoint(tmp_path / "best.pt"), out=tmp_path / "out", int8=True,
                          backends=("onnx",), qdq_variants=("s8",), accuracy_control=True, qat="never",
                          min_int8_share=0.95, calib_n=16, drift_n=20, severities=(), parity_n=8,
                          data_root=tmp_path / "data", threads=1, budgets={"label_flip_rate": Budget("label_flip_rate", abs=0.0)})
    manifest = run_export(config, log=lambda _: None)
    r = manifest["accuracy_control"]["artifacts"]["model_int8_s8.onnx"]
    assert r["rounds"][0]["violations"]  # past its budget after PTQ, so QAT would have been next
    assert r["shipped"] == "ptq" and "qat" not in manifest
    assert all(rnd.get("weights") != "qat" for rnd in r["rounds"])
