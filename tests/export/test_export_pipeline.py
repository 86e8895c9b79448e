"""python -m export on a tiny real dual-path checkpoint: artifacts, metadata, parity, QDQ structure, manifest,
drift reports, accuracy control and the error paths."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxslim")
torch = pytest.importorskip("torch")

import onnx  # noqa: E402

from dualpath import contract  # noqa: E402
from dualpath.exitcodes import BAD_INPUT  # noqa: E402
from export.__main__ import main  # noqa: E402
from export.config import export_config as ExportConfig  # noqa: E402
from export.pipeline import run_export  # noqa: E402
from export.quantize_onnx import VARIANTS  # noqa: E402
from export_helpers import make_checkpoint as _checkpoint  # noqa: E402  (same folder)
from runtime.backends import load_backend  # noqa: E402



def test_writes_every_artifact_and_no_temporaries(exported):
    config, manifest, _ = exported
    names = {p.name for p in config.out.iterdir()}
    assert {"model_fp32.onnx", "model_int8_u8.onnx", "model_int8_s8.onnx", "model_fp32.xml", "model_fp32.bin",
            "model_int8.xml", "model_int8.bin", "manifest.json", "metadata.json", "calibration_ranges.json",
            "build_tensorrt_engine.py", "build_tensorrt_engine.sh"} <= names
    assert not [n for n in names if n.startswith(".")], "temporary files left behind"


def test_metadata_travels_in_every_artifact(exported):
    config, manifest, _ = exported
    for name in ("model_fp32.onnx", "model_int8_u8.onnx", "model_int8_s8.onnx", "model_fp32.xml", "model_int8.xml"):
        with load_backend(config.out / name) as be:
            meta = be.metadata
        assert meta.class_names == contract.CLASS_NAMES and meta.image_size == 64 and meta.std == contract.STD
        assert meta.extra["checkpoint_sha256"] == manifest["checkpoint"]["sha256"]
        assert meta.extra["training_metrics"] == {"macro_map": 0.25, "accuracy": 0.9}
        assert set(meta.extra["outputs"]) == {"probs", "recon"} and "onnx" in meta.extra["versions"]
    with load_backend(config.out / "model_int8_s8.onnx") as be:
        assert be.metadata.extra["precision"] == "int8-qdq-s8"
    for name in ("model_int8_u8.onnx", "model_int8.xml"):  # 8-bit weights (--u8-weights), the IR's from the u8 model
        with load_backend(config.out / name) as be:
            assert be.metadata.extra["int8_weight_bits"] == 8, name


def test_fp32_graph_and_parity(exported):
    config, manifest, logs = exported
    proto = onnx.load(str(config.out / "model_fp32.onnx"))
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    assert manifest["onnx"]["opset"] == 17
    assert manifest["parity"]["probs_max_abs_diff"] < 1e-4 and manifest["parity"]["recon_max_abs_diff"] < 1e-4
    assert any(line.startswith("parity vs torch") for line in logs)
    with load_backend(config.out / "model_fp32.onnx") as be:
        out = be.infer({"image": np.zeros((5, 3, 64, 64), np.float32)})  # a batch size never exported
    assert out["probs"].shape == (5, 20)


def _producers(proto):
    return {o: n for n in proto.graph.node for o in n.output}


@pytest.mark.parametrize("variant", ["s8", "u8"])
def test_qdq_structure(exported, variant):
    config, manifest, _ = exported
    proto = onnx.load(str(config.out / f"model_int8_{variant}.onnx"))
    producers = _producers(proto)
    summary = manifest["recipes"][f"model_int8_{variant}.onnx"]["graph"]
    # Float by rule: the CBAM convs and the reconstruction conv; by each variant's FloatRecipe the classifier head's
    # two Gemms (u8) and its last decoder blocks' convs (u8 one, s8 two); every DenseNet conv is INT8.
    conv_gemm = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    float_ones = {n.name for n in conv_gemm if getattr(producers.get(n.input[1]), "op_type", None) != "DequantizeLinear"}
    assert all(n.startswith(("/model/reconstruction/", "/model/head/", "/model/decoder/blocks.3/",
                             "/model/decoder/blocks.4/")) for n in float_ones), sorted(float_ones)
    recipe = VARIANTS[variant].floats
    assert bool({n for n in float_ones if n.startswith("/model/head/")}) == recipe.head
    assert {n for n in float_ones if "blocks.4" in n}
    assert bool({n for n in float_ones if "blocks.3" in n}) == (recipe.decoder_blocks >= 2)
    assert summary["conv_gemm_int8"] == summary["conv_gemm_total"] - len(float_ones) > len(float_ones)
    assert not [n for n in float_ones if "/encoder/" in n or "/features/" in n]  # both DenseNets fully INT8
    # both outputs come straight from float ops, and the reconstruction is never quantized (no shared scale)
    assert producers["probs"].op_type == "Sigmoid" and producers["recon"].op_type == "Tanh"
    assert not [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "recon"]
    gates = [n for n in proto.graph.node if "/cbam/" in n.name and n.op_type == "Sigmoid"]
    assert len(gates) == 2  # channel and spatial attention
    for gate in gates:  # computed from float inputs and applied in float
        assert producers[gate.input[0]].op_type != "DequantizeLinear"
        assert not [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == gate.output[0]]
    zero_points = [i for i in proto.graph.initializer if i.name.endswith("zero_point")]
    want = onnx.TensorProto.INT8 if variant == "s8" else onnx.TensorProto.UINT8
    activation_zps = {i.data_type for i in zero_points if i.dims == []}
    assert want in activation_zps
    if variant == "s8":  # symmetric: every zero point is 0, as TensorRT requires
        assert all(not onnx.numpy_helper.to_array(i).any() for i in zero_points)


def test_s8_quantizes_only_what_weighted_ops_read(exported):
    """TensorRT placement: every activation Q/DQ of the s8 model feeds a Conv or Gemm, no Concat reads a DQ (its
    concatenations stay float), and no Conv output is quantized."""
    config, _, _ = exported
    proto = onnx.load(str(config.out / "model_int8_s8.onnx"))
    producers = _producers(proto)
    init = {i.name for i in proto.graph.initializer}
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node)
    dqs = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in init]
    assert dqs
    for dq in dqs:
        assert {c.op_type for c in consumers.get(dq.output[0], [])} <= {"Conv", "Gemm"}, dq.name
    for q in (n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in producers):
        assert producers[q.input[0]].op_type not in ("Conv", "Gemm"), q.name
    assert any(n.op_type == "Concat" for n in proto.graph.node)


def test_shared_concat_ranges_give_a_concat_group_one_scale(exported, tmp_path):
    """Variant.share_concat (off by default): every DenseNet concatenation of a group gets one scale."""
    import dataclasses

    from export import quantize_onnx as q

    config, _, _ = exported
    # the shared ranges file groups concats outside the default float recipe (two float decoder blocks)
    variant = dataclasses.replace(q.VARIANTS["s8"], share_concat=True, placement="all", floats=q.FloatRecipe())
    fp32 = config.out / "model_fp32.onnx"
    path = tmp_path / "shared.onnx"
    q.quantize(fp32, path, config.out / "calibration_ranges_shared_concat.json", variant, config.calib_method,
               variant.float_nodes(onnx.load(str(fp32))))
    proto = onnx.load(str(path))
    producers = _producers(proto)
    init = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    checked = 0
    for node in proto.graph.node:
        if node.op_type != "Concat" or "/cbam/" in node.name:
            continue
        scales = {float(init[producers[t].input[1]]) for t in node.input
                  if t in producers and producers[t].op_type == "DequantizeLinear"}
        if not scales:
            continue  # a concat of the float decoder block
        q_out = [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == node.output[0]]
        scales |= {float(init[n.input[1]]) for n in q_out}
        assert len(scales) == 1, f"{node.name} mixes scales {scales}"
        checked += 1
    assert checked >= 4


def test_manifest_records_files_calibration_and_drift(exported):
    from export.atomic import file_sha256

    config, manifest, logs = exported
    on_disk = json.loads((config.out / "manifest.json").read_text())
    assert on_disk["checkpoint"]["sha256"] == manifest["checkpoint"]["sha256"]
    for name, info in on_disk["files"].items():
        assert file_sha256(config.out / name) == info["sha256"], name
    assert on_disk["calibration"]["seed"] == 1_000_003 and on_disk["calibration"]["n"] == 16
    assert set(on_disk["drift"]) == {"model_int8_u8.onnx", "model_int8_s8.onnx", "model_int8.xml", "model_fp16.onnx",
                                     "model_fp16.xml", "model_bf16.xml"}
    for r in on_disk["drift"].values():
        assert (config.out / r["report"] / "drift.json").is_file()
        assert set(r["delta"]) >= {"accuracy", "macro_map", "ssim"}
    assert on_disk["recipes"]["model_int8_s8.onnx"]["target"].startswith("TensorRT")
    assert on_disk["recipes"]["model_int8.xml"]["source"] == "model_int8_u8.onnx"  # --ov-int8 qdq (default)
    assert on_disk["recipes"]["model_int8_u8.onnx"]["weight_bits"] == on_disk["recipes"]["model_int8.xml"]["weight_bits"] == 8
    assert on_disk["recipes"]["model_int8_u8.onnx"]["calibration"] == "percentile"  # the default
    assert on_disk["recipes"]["model_int8_s8.onnx"]["tensorrt_rules"] == "pass"
    assert on_disk["tensorrt"]["built"] is False and "build_tensorrt_engine.py" in on_disk["tensorrt"]["command"]
    assert any("d accuracy" in line for line in logs)  # the summary table


def test_layer_ranking_and_control_loop(exported):
    from calibration import CalibrationBatches
    from export import accuracy_control as ac

    config, _, _ = exported
    batches = list(CalibrationBatches(np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), np.uint8), 4))
    ranking = ac.rank_layers(config.out / "model_fp32.onnx", config.out / "model_int8_s8.onnx", batches, set())
    assert len(ranking) > 10 and ranking[0][1] >= ranking[-1][1] > 0
    # Same tensors on both sides: QDQ names a conv's pre-ReLU output after its fused ReLU; compared as-is, layers
    # showed errors larger than their signal (NMSE > 1). INT8 error is a small part of each activation.
    assert ranking[0][1] < 0.5, ranking[:3]
    built = []
    result = ac.control(ranking, lambda kept: built.append(list(kept)) or config.out / "x",
                        lambda _: {"violations": [] if len(built[-1]) >= 4 else ["macro_map: too far"], "worst": 1.5},
                        start={"violations": ["macro_map: too far"], "worst": 2.0})
    assert result["met"] and len(result["kept_in_float"]) == 4 and [len(b) for b in built] == [2, 4]


def test_openvino_int8_keeps_the_named_layers_in_float(exported):
    """An ONNX Conv with a bias is two OpenVINO ops ("<node>/WithoutBiases" + the bias Add "<node>"): the layer stays
    in float only if the weighted op is in NNCF's ignored scope."""
    import openvino as ov
    import onnx

    from calibration import CalibrationBatches
    from export.openvino_export import ov_ignored_names, quantize_int8

    config, _, _ = exported
    conv = next(n.name for n in onnx.load(str(config.out / "model_fp32.onnx")).graph.node
                if n.op_type == "Conv" and "/encoder/" in n.name and "denselayer" in n.name)
    model = ov.Core().read_model(str(config.out / "model_fp32.xml"))
    names = ov_ignored_names(model, [conv, "/no/such/node"])
    assert f"{conv}/WithoutBiases" in names and set(names) <= {conv, f"{conv}/WithoutBiases"}
    batches = list(CalibrationBatches(np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), np.uint8), 4))

    def fake_quantized_inputs(int8_model) -> int:
        op = next(o for o in int8_model.get_ops() if o.get_friendly_name() == f"{conv}/WithoutBiases")
        return sum(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())

    assert fake_quantized_inputs(quantize_int8(model, batches, [], subset_size=8)) > 0
    model = ov.Core().read_model(str(config.out / "model_fp32.xml"))
    assert fake_quantized_inputs(quantize_int8(model, batches, [conv], subset_size=8)) == 0


@pytest.mark.parametrize("ranges", ["minmax", "mean_minmax"])
def test_openvino_activation_ranges(ranges):
    """minmax keeps the whole observed range of an activation (one bright scene among dark ones sets it); NNCF's
    mean_minmax averages each scene's extremes and clips that scene."""
    pytest.importorskip("nncf")
    import openvino as ov
    import openvino.opset13 as ops

    from export.openvino_export import quantize_int8

    rng = np.random.default_rng(0)
    image = ops.parameter([1, 3, 8, 8], np.float32, name="image")
    conv = ops.convolution(image, ops.constant(rng.normal(size=(4, 3, 3, 3)).astype(np.float32)),
                           [1, 1], [1, 1], [1, 1], [1, 1])
    model = ov.Model([ops.relu(conv)], [image])
    samples = rng.uniform(0.0, 1.0, (8, 3, 8, 8)).astype(np.float32)
    samples[-1] *= 10.0  # one scene whose maximum is ~10, the others ~1
    maxima = samples.reshape(8, -1).max(axis=1)
    q = quantize_int8(model, [{"image": samples[i : i + 4]} for i in (0, 4)], [], subset_size=8,
                      activation_ranges=ranges)
    fq = next(op for op in q.get_ops() if op.get_type_name() == "FakeQuantize"
              and op.input(0).get_source_output().get_node().get_type_name() == "Parameter")
    high = float(fq.input(2).get_source_output().get_node().get_data().max())
    expected = maxima.max() if ranges == "minmax" else maxima.mean()
    assert high == pytest.approx(expected, rel=0.05), (high, maxima)
    with pytest.raises(ValueError, match="activation ranges"):
        quantize_int8(model, [], [], subset_size=1, activation_ranges="entropy")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "o")]) == BAD_INPUT
    assert "cannot use checkpoint" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) == BAD_INPUT
    assert "no checkpoint" in capsys.readouterr().err


def test_mismatched_checkpoint_is_refused(tmp_path, capsys):
    path = _checkpoint(tmp_path / "cae.pt", arch="cae")
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "o")]) == BAD_INPUT
    assert "'cae' model" in capsys.readouterr().err
    path = _checkpoint(tmp_path / "labels.pt", class_names=["cat", "dog"])
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "o")]) == BAD_INPUT
    assert "other classes" in capsys.readouterr().err


def test_unwritable_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--checkpoint", str(tmp_path / "x.pt"), "--out", str(blocker / "sub")]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "cannot write" in err and "is a file, not a folder; choose another --out" in err


def test_missing_backend_package_is_named(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    assert main(["--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "o")]) == BAD_INPUT
    assert "needs openvino" in capsys.readouterr().err


def test_config_validation():
    with pytest.raises(ValueError, match="backends"):
        ExportConfig(checkpoint="x", out="y", backends=("tflite",))
    with pytest.raises(ValueError, match="needs --int8"):
        ExportConfig(checkpoint="x", out="y", accuracy_control=True)
    with pytest.raises(ValueError, match="control_margin"):
        ExportConfig(checkpoint="x", out="y", int8=True, accuracy_control=True, control_margin=0.0)
    with pytest.raises(ValueError, match="ov_ranges"):
        ExportConfig(checkpoint="x", out="y", ov_ranges="histogram")
    with pytest.raises(ValueError, match="calib_seed"):
        ExportConfig(checkpoint="x", out="y", calib_seed=3)


def _bench_module(name):
    import importlib

    return importlib.import_module(f"benchmarks.{name}")


def test_openvino_profile_sums_layers_by_kernel_and_part(exported, tmp_path, capsys):
    prof = _bench_module("openvino_profile")
    config, _, _ = exported
    out = tmp_path / "profile.json"
    assert prof.main(["--export", str(config.out), "--threads", "1", "--calls", "3", "--out", str(out)]) == 0
    models = json.loads(out.read_text())["models"]
    assert set(models) == {"fp32", "int8"}
    for r in models.values():
        assert r["total_ms"] > 0 and sum(r["by_kernel_ms"].values()) == pytest.approx(r["total_ms"])
        assert sum(r["by_part_ms"].values()) == pytest.approx(r["total_ms"])
        assert {"encoder", "decoder"} <= set(r["by_part_ms"])
    assert any("I8" in k or "i8" in k for k in models["int8"]["by_kernel_ms"])  # INT8 kernels ran
    assert not any("I8" in k for k in models["fp32"]["by_kernel_ms"])
    assert "INT8 vs FP32" in capsys.readouterr().out
    assert prof.part_of("/model/encoder/denseblock1/x") == "encoder" and prof.part_of("/Sigmoid") == "other"


def test_inference_benchmark_rounds_each_runtime_in_its_own_process(exported, tmp_path, capsys):
    """benchmarks/inference.py on the tiny export: every runtime timed once per round in a subprocess; the rows keep
    each round's p50 (the headline is the lowest) and the paired INT8-vs-FP32 ratios are those rounds' quotients."""
    bench = _bench_module("inference")
    config, _, _ = exported
    out = tmp_path / "inference.json"
    assert bench.main(["--export", str(config.out), "--checkpoint", str(config.checkpoint), "--threads", "1",
                       "--warmup", "1", "--iters", "6", "--rounds", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["rows"]}
    assert {"pytorch eager fp32", "onnxruntime fp32", "openvino fp32", "openvino int8"} <= set(rows)
    for r in rows.values():
        assert len(r["rounds_p50_ms"]) == 2 and r["p50_ms"] == pytest.approx(min(r["rounds_p50_ms"]), abs=1e-3)
    fp32, int8 = rows["openvino fp32"]["rounds_p50_ms"], rows["openvino int8"]["rounds_p50_ms"]
    assert result["paired_ratios"]["openvino_int8_vs_fp32"] == pytest.approx([f / i for f, i in zip(fp32, int8)], rel=1e-2)
    pair = result["openvino_pair"]
    assert pair["blocks"] == 40 and pair["ratio_q25"] <= pair["ratio_median"] <= pair["ratio_q75"]
    assert result["machine"]["rounds"] == 2 and "alternating blocks" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--export", str(tmp_path / "nothing")])


def test_openvino_int8_is_the_u8_graph_unless_nncf_is_asked(exported, tmp_path):
    """--ov-int8 qdq (default) converts the u8 QDQ model; --ov-int8 nncf, or an export that writes no QDQ model
    (--backends openvino), quantizes with NNCF."""
    import dataclasses

    from export.context import qdq_source_for_openvino
    from export.pipeline import run_export

    config, manifest, logs = exported
    assert manifest["recipes"]["model_int8.xml"]["source"] == "model_int8_u8.onnx"
    assert any("converted from model_int8_u8.onnx" in line for line in logs)
    assert qdq_source_for_openvino(dataclasses.replace(config, qdq_variants=("s8",))) == "model_int8_s8.onnx"
    assert qdq_source_for_openvino(dataclasses.replace(config, ov_int8="nncf")) == ""
    alone = dataclasses.replace(config, out=tmp_path / "ov", backends=("openvino",), fp16=False, benchmark=False)
    assert qdq_source_for_openvino(alone) == ""
    lines: list[str] = []
    ov_manifest = run_export(alone, log=lines.append)
    assert "NNCF" in ov_manifest["recipes"]["model_int8.xml"]["format"] and any("(NNCF)" in line for line in lines)
