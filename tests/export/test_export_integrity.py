"""The export certifies exactly what it built (issue 12): the manifest lists only this export's files and each model
file carries the checkpoint hash it names; stale files of a previous export go, a user's files stay, foreign ones are
refused; accuracy control never empties the model and says when it fails; parity is enforced; --baseline gates;
FP16 artifacts and TensorRT engines say what precision they are; one benchmark table covers every artifact."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
pytest.importorskip("torch")

import onnx  # noqa: E402

from dualpath.exitcodes import BAD_INPUT, OK, VERDICT  # noqa: E402
from dualpath.files import file_sha256  # noqa: E402
from export import accuracy_control as ac  # noqa: E402
from export.__main__ import main  # noqa: E402
from export_helpers import make_checkpoint  # noqa: E402  (same folder)
from runtime.backends import load_backend  # noqa: E402
from trt_fakes import FakeGpu, fake_tensorrt  # noqa: E402  (tests/)

MODEL_SUFFIXES = (".onnx", ".xml")


def _export(ckpt, out, data, *extra) -> int:
    return main(["--checkpoint", str(ckpt), "--out", str(out), "--calib-n", "16", "--drift-n", "20", "--severities", "",
                 "--data-root", str(data), "--threads", "1", *extra])


def _model_files(manifest: dict) -> list[str]:
    return [n for n in manifest["files"] if n.endswith(MODEL_SUFFIXES)]


def _precision(path) -> str:
    with load_backend(path) as be:
        return be.metadata.extra["precision"], be.metadata.extra["checkpoint_sha256"]


def test_every_listed_model_file_carries_the_manifests_checkpoint_hash(exported):
    config, _, _ = exported
    manifest = json.loads((config.out / "manifest.json").read_text())
    names = _model_files(manifest)
    assert {"model_fp32.onnx", "model_fp16.onnx", "model_fp16.xml", "model_int8.xml", "model_int8_s8.onnx"} <= set(names)
    for name in names:
        precision, sha = _precision(config.out / name)
        assert sha == manifest["checkpoint"]["sha256"], name
        assert precision.startswith(name.split("_")[1].split(".")[0]), (name, precision)  # fp32 / fp16 / int8
    sidecar = json.loads((config.out / "metadata.json").read_text())  # the TensorRT build's metadata source
    assert json.loads(sidecar["checkpoint_sha256"]) == manifest["checkpoint"]["sha256"]
    assert set(manifest["files"]) == {str(p.relative_to(config.out)) for p in config.out.rglob("*")
                                      if p.is_file() and p.name != "manifest.json"}


def test_fp16_artifacts_are_the_converters_output_with_drift_reports(exported):
    import openvino as ov

    config, manifest, _ = exported
    proto = onnx.load(str(config.out / "model_fp16.onnx"))
    types = {i.data_type for i in proto.graph.initializer if len(i.dims) > 1}
    assert types == {onnx.TensorProto.FLOAT16}  # every weight tensor in FP16
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the runtime feeds float32
    ir = ov.Core().read_model(str(config.out / "model_fp16.xml"))
    weights = {op.get_output_element_type(0).get_type_name() for op in ir.get_ops()
               if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) == 4}
    assert weights == {"f16"}
    assert (config.out / "model_fp16.bin").stat().st_size < 0.6 * (config.out / "model_fp32.bin").stat().st_size
    for name in ("model_fp16.onnx", "model_fp16.xml"):
        r = manifest["drift"][name]
        assert (config.out / r["report"] / "drift.json").is_file() and r["reference"].startswith("model_fp32")
        assert json.loads((config.out / r["report"] / "drift.json").read_text())["artifacts"]["candidate"] == name
        assert abs(r["delta"]["ssim"]) < 0.01 and name in manifest["recipes"]
    with load_backend(config.out / "model_fp16.onnx") as be:
        out = be.infer({"image": np.zeros((2, 3, 64, 64), np.float32)})
    assert out["probs"].dtype == np.float32 and out["probs"].shape == (2, 20)


def test_recipes_are_read_back_from_the_written_files(exported):
    from export.context import artifact_graph

    config, manifest, _ = exported
    for name in ("model_int8_s8.onnx", "model_int8_u8.onnx", "model_int8.xml"):
        graph = manifest["recipes"][name]["graph"]
        assert graph == artifact_graph(config.out / name), name
        assert 0 < graph["conv_gemm_int8"] < graph["conv_gemm_total"]
        assert len(graph["float_conv_gemm"]) == graph["conv_gemm_total"] - graph["conv_gemm_int8"]
    # each QDQ model's own float recipe (export.quantize_onnx.FloatRecipe): the layers it names end up float; the
    # OpenVINO INT8 IR is converted from the u8 model (--ov-int8 qdq): the same layers are float in both
    import onnx

    from export.quantize_onnx import VARIANTS

    fp32 = onnx.load(str(config.out / "model_fp32.onnx"))
    weighted = {n.name for n in fp32.graph.node if n.op_type in ("Conv", "Gemm")}
    for name in ("model_int8_s8.onnx", "model_int8_u8.onnx"):
        floats = VARIANTS[name.split("_")[-1].split(".")[0]].float_nodes(fp32)
        assert set(manifest["recipes"][name]["graph"]["float_conv_gemm"]) == set(floats) & weighted, name
    assert manifest["recipes"]["model_int8.xml"]["source"] == "model_int8_u8.onnx"
    assert manifest["recipes"]["model_int8.xml"]["graph"]["conv_gemm_int8"] == \
        manifest["recipes"]["model_int8_u8.onnx"]["graph"]["conv_gemm_int8"]


def test_benchmark_table_covers_every_artifact(exported):
    config, manifest, logs = exported
    result = json.loads((config.out / "benchmark.json").read_text())
    on_disk = json.loads((config.out / "manifest.json").read_text())
    assert {"benchmark.md", "benchmark.json"} <= set(on_disk["files"])
    rows = {r["artifact"]: r for r in result["rows"]}
    assert set(rows) == set(_model_files(on_disk))
    for name, r in rows.items():
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["batch32_images_per_s"] > 0, r
        assert len(r["rounds_p50_ms"]) == 2 and r["p50_ms"] == pytest.approx(min(r["rounds_p50_ms"]), abs=1e-3)
        extra = (config.out / name).with_suffix(".bin").stat().st_size if name.endswith(".xml") else 0
        assert r["bytes"] == (config.out / name).stat().st_size + extra
        if name in manifest["drift"]:
            assert r["drift"]["macro_map"] == manifest["drift"][name]["delta"]["macro_map"]
        else:
            assert "fp32" in name and r["drift"] is None
    table = (config.out / "benchmark.md").read_text()
    assert result["machine"]["cpu"] in table and all(f"| {name} |" in table for name in rows)


def test_benchmark_command_on_an_existing_export(exported, tmp_path):
    config, _, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(config.out, copy)
    (copy / "benchmark.md").unlink()
    from export.benchmark import main as bench_main

    assert bench_main(["--export", str(copy), "--threads", "1", "--iters", "10", "--rounds", "1"]) == 0
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["files"]["benchmark.md"]["sha256"] == file_sha256(copy / "benchmark.md")
    assert bench_main(["--export", str(tmp_path / "none")]) == 2


@pytest.mark.slow  # two whole exports
def test_reexport_replaces_only_the_previous_exports_files(tmp_path, capsys):
    """Export A (FP16, ONNX + OpenVINO), then B (another checkpoint, ONNX only) into the same folder: A's files
    that B does not write are gone, the user's own file stays (and is not listed), every listed model file says B;
    B gates its drift against A's reports (--baseline on the same folder, read before anything is replaced)."""
    data, out = tmp_path / "data", tmp_path / "out"
    a = make_checkpoint(tmp_path / "a.pt", seed=0)
    b = make_checkpoint(tmp_path / "b.pt", seed=1)
    loose = ["--budget", "ssim=1", "--budget", "accuracy=1", "--budget", "macro_map=1",  # untrained: not the point
             "--budget", "label_flip_rate=1"]
    assert _export(a, out, data, "--fp16", *loose) == OK
    assert (out / "model_fp16.xml").is_file() and (out / "drift" / "model_fp16_xml" / "drift.json").is_file()
    (out / "notes.txt").write_text("mine")
    assert _export(b, out, data, "--fp16", "--backends", "onnx", "--baseline", str(out), *loose) == OK
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["checkpoint"]["sha256"] == file_sha256(b)
    assert not [p for p in ("model_fp32.xml", "model_fp32.bin", "model_fp16.xml", "model_fp16.bin") if (out / p).exists()]
    assert not (out / "drift" / "model_fp16_xml").exists() and (out / "drift" / "model_fp16_onnx").is_dir()
    assert (out / "notes.txt").read_text() == "mine" and "notes.txt" not in manifest["files"]
    for name in _model_files(manifest):
        assert _precision(out / name)[1] == file_sha256(b), name
    assert manifest["drift"]["model_fp16.onnx"]["baseline"] is True
    assert "baseline" in json.loads((out / "drift" / "model_fp16_onnx" / "drift.json").read_text())
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_foreign_files_and_manifests_are_refused(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "a.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_fp32.onnx").write_bytes(b"someone else's model")
    assert _export(ckpt, out, tmp_path / "data") == BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model_fp32.onnx" in err[0] and "no dualpath manifest" in err[0]
    assert (out / "model_fp32.onnx").read_bytes() == b"someone else's model"
    (out / "model_fp32.onnx").unlink()
    (out / "manifest.json").write_text(json.dumps({"format": "other-tool/3", "files": {"x": {}}}))
    assert _export(ckpt, out, tmp_path / "data") == BAD_INPUT
    assert "not a dualpath export manifest" in capsys.readouterr().err


def test_parity_past_tolerance_fails_and_keeps_the_previous_export(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "a.pt")
    out, data = tmp_path / "out", tmp_path / "data"
    assert _export(ckpt, out, data, "--backends", "onnx") == OK
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert _export(ckpt, out, data, "--backends", "onnx", "--parity-tol", "1e-12") == VERDICT
    err = capsys.readouterr().err
    assert "FAILED" in err and "differs from torch" in err and "tolerance 1e-12" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # untouched, no stage left
    assert _export(ckpt, out, data, "--parity-tol", "nan") == BAD_INPUT


def test_missing_baseline_is_a_clear_error(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "a.pt")
    assert _export(ckpt, tmp_path / "out", tmp_path / "data", "--baseline", str(tmp_path / "none")) == BAD_INPUT
    assert "--baseline takes" in capsys.readouterr().err


def test_baseline_on_other_drift_scenes_is_refused_before_any_work(exported, tmp_path, capsys):
    config, _, _ = exported  # its drift reports used 20 scenes; this export asks for 40
    ckpt = make_checkpoint(tmp_path / "a.pt")
    out = tmp_path / "out"
    assert main(["--checkpoint", str(ckpt), "--out", str(out), "--int8", "--drift-n", "40",
                 "--baseline", str(config.out)]) == BAD_INPUT
    err = capsys.readouterr().err
    assert "measured on other drift scenes" in err and err.count("\n") == 1
    assert not list(out.iterdir())  # refused before the first artifact


def test_bad_budgets_exit_2_before_any_work(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "a.pt")
    for flag in (["--budget", "macro_map=nan"], ["--budget", "ssim=-1"], ["--min-int8-share", "1.5"]):
        assert _export(ckpt, tmp_path / "out", tmp_path / "data", "--int8", *flag) == BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err
    f = tmp_path / "budgets.json"
    f.write_text('{"accuracy": {"abs": "lots"}}')
    assert _export(ckpt, tmp_path / "out", tmp_path / "data", "--budgets-file", str(f)) == BAD_INPUT
    assert "must be a number" in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()


# -- accuracy control --------------------------------------------------------------------------------------------

def test_allowed_in_float_keeps_the_minimum_int8_share():
    assert ac.allowed_in_float(30, 42, 0.5) == 9  # 21 of 42 must stay INT8
    assert ac.allowed_in_float(20, 42, 0.5) == 0 and ac.allowed_in_float(30, 42, 0.0) == 30
    assert ac._steps((2, 4, 8, 16, 32, 64), 9) == [2, 4, 8, 9] and ac._steps((2, 4), 0) == []


def test_control_stops_at_the_share_and_keeps_the_best_round():
    """The budget is never met; round 4 came closest: that is what stays on disk, reported as not met."""
    ranking = [(f"conv{i}", 1.0 / (i + 1)) for i in range(30)]
    built: list[list[str]] = []
    worst = {0: 3.0, 2: 2.0, 4: 1.2, 8: 1.6, 9: 1.9}

    def evaluate(_):
        k = len(built[-1])
        return {"violations": [f"macro_map: {worst[k]:.1f} x budget"], "worst": worst[k]}

    result = ac.control(ranking, lambda kept: built.append(list(kept)), evaluate,
                        start={"violations": ["macro_map: 3.0 x budget"], "worst": 3.0},
                        fallback=[f"decoder{i}" for i in range(5)] + [f"conv{i}" for i in range(10, 30)],
                        max_float=9, weighted={name for name, _ in ranking})
    assert not result["met"] and result["violations"] == ["macro_map: 1.2 x budget"]
    assert [r["layers_in_float"] for r in result["rounds"]] == [0, 2, 4, 8, 9, 22]
    assert "skipped" in result["rounds"][-1]  # 22 weighted layers in float would leave fewer than half INT8
    assert result["kept_in_float"] == [f"conv{i}" for i in range(4)] and built[-1] == result["kept_in_float"]
    assert max(len(b) for b in built) <= 9


@pytest.mark.slow  # a whole export with accuracy-control rounds
def test_accuracy_control_that_cannot_meet_its_budgets_says_so(tmp_path, capsys):
    """Budgets no INT8 model meets (no metric may drop at all): accuracy control must stop at half the convs in INT8,
    keep its best round, exit 1 naming the numbers, and the recipe must describe the file it left."""
    from export.quantize_onnx import qdq_summary

    ckpt = make_checkpoint(tmp_path / "a.pt")
    out = tmp_path / "out"
    zero = [arg for m in ("accuracy", "macro_map", "ssim", "psnr", "hamming_loss", "macro_auc")
            for arg in ("--budget", f"{m}=0")]
    code = _export(ckpt, out, tmp_path / "data", "--int8", "--backends", "onnx", "--qdq-variants", "s8",
                   "--accuracy-control", "--qat-minutes", "0.05", "--qat-scenes", "64", *zero)  # QAT tried, briefly
    manifest = json.loads((out / "manifest.json").read_text())
    control = manifest["accuracy_control"]["artifacts"]["model_int8_s8.onnx"]
    assert control["met"] is False and code == VERDICT
    err = capsys.readouterr().err
    assert "BUDGET NOT MET: model_int8_s8.onnx" in err and "at least 50% required" in err
    written = qdq_summary(onnx.load(str(out / "model_int8_s8.onnx")))
    assert written["conv_gemm_int8"] >= 0.5 * written["conv_gemm_total"]
    assert manifest["recipes"]["model_int8_s8.onnx"]["graph"] == written
    assert set(control["kept_in_float"]) <= set(written["float_conv_gemm"]) | set(
        manifest["recipes"]["model_int8_s8.onnx"]["kept_in_float"])
    assert set(control["kept_in_float"]) <= set(manifest["recipes"]["model_int8_s8.onnx"]["kept_in_float"])
    best = control["rounds"][control["best_round"]]
    assert best["worst"] == min(r["worst"] for r in control["rounds"] if "worst" in r)


# -- TensorRT (a fake tensorrt module: TensorRT is not installed on the CPU machines) ----------------------------

@pytest.mark.parametrize("version, source, fp16, expected", [
    ("10.3.0", "model_int8_s8.onnx", True, "int8-qdq+fp16"),
    ("10.3.0", "model_int8_s8.onnx", False, "int8-qdq"),
    ("10.3.0", "model_fp16.onnx", True, "fp16"),
    ("10.3.0", "model_fp32.onnx", False, "fp32"),
    ("11.4.1", "model_int8_s8.onnx", True, "int8-qdq"),  # strongly typed: the Q/DQ nodes alone decide
    ("11.4.1", "model_fp16.onnx", True, "fp16"),
])
def test_engine_metadata_names_its_real_precision(exported, tmp_path, monkeypatch, version, source, fp16, expected):
    from runtime.backends import trt_engine

    config, manifest, _ = exported
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(version))
    metadata = json.loads((config.out / "metadata.json").read_text())  # the FP32 model's: precision "fp32"
    sidecar = trt_engine.build(config.out / source, tmp_path / "m.engine", metadata, fp16=fp16)
    assert json.loads(sidecar.metadata["precision"]) == expected
    assert json.loads(sidecar.metadata["checkpoint_sha256"]) == manifest["checkpoint"]["sha256"]
    on_disk = json.loads((tmp_path / "m.engine.json").read_text())
    assert on_disk["metadata"]["precision"] == sidecar.metadata["precision"]


def test_tensorrt_step_builds_both_engines_and_their_script(exported, tmp_path, monkeypatch):
    """With TensorRT present, the TensorRT step builds the INT8 and the FP16 engine; both are drift pairs."""
    import dataclasses

    from export import context, tensorrt_step

    config, _, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(config.out, copy)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt("10.3.0"))
    result = tensorrt_step.build(dataclasses.replace(config, out=copy), lambda _: None)
    assert result["built"] and {e: v["precision"] for e, v in result["engines"].items()} == {
        "model_int8.engine": "int8-qdq+fp16", "model_fp16.engine": "fp16"}
    pairs = context.drift_pairs(dataclasses.replace(config, out=copy))  # the engines now exist
    assert pairs["model_int8.engine"] == pairs["model_fp16.engine"] == "model_fp32.onnx"
    script = (copy / "build_tensorrt_engine.sh").read_text()
    assert "model_int8_s8.onnx" in script and "model_fp16.onnx --metadata" in script


@pytest.mark.parametrize("source, version, expected", [("model_int8_s8.onnx", "10.3.0", "int8-qdq+fp16"),
                                                       ("model_int8_s8.onnx", "11.4.1", "int8-qdq"),
                                                       ("model_fp16.onnx", "11.4.1", "fp16"),
                                                       ("model_fp32.onnx", "11.4.1", "fp32")])
def test_jetson_sidecar_names_the_engines_precision(exported, source, version, expected):
    """jetson/build_engine.sh's sidecar: the precision comes from the ONNX's graph, not metadata.json (FP32's)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "jetson" / "sidecar.py"
    spec = importlib.util.spec_from_file_location("jetson_sidecar", path)
    sidecar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sidecar)
    config, _, _ = exported
    assert sidecar.engine_precision_of(config.out / source, version) == expected


@pytest.mark.slow  # a whole export (TensorRT faked)
def test_export_with_tensorrt_gates_both_engines_and_lists_them(tmp_path, monkeypatch):
    """TensorRT present (faked, tests/trt_fakes.py: the real TensorRT backend runs each engine, whose fake executes
    the ONNX it was built from): the export builds the INT8 and FP16 engines, writes a drift report for each, and lists
    them with sidecars naming their precision."""
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export

    gpu = FakeGpu("10.3.0").install(monkeypatch)
    config = ExportConfig(checkpoint=make_checkpoint(tmp_path / "a.pt"), out=tmp_path / "out", int8=True, fp16=True,
                          backends=("onnx", "tensorrt"), qdq_variants=("s8",), calib_n=16, drift_n=20, severities=(),
                          parity_n=8, data_root=tmp_path / "data", threads=1)
    manifest = run_export(config, log=lambda _: None)
    assert {"model_int8.engine", "model_fp16.engine"} <= set(manifest["drift"])
    for engine, precision in (("model_int8.engine", "int8-qdq+fp16"), ("model_fp16.engine", "fp16")):
        r = manifest["drift"][engine]
        assert r["reference"] == "model_fp32.onnx" and (config.out / r["report"] / "drift.json").is_file()
        assert manifest["recipes"][engine]["precision"] == precision
        assert {engine, engine + ".json"} <= set(manifest["files"])
        with load_backend(config.out / engine) as be:  # the sidecar: real precision, this checkpoint
            assert be.metadata.extra["precision"] == precision
            assert be.metadata.extra["checkpoint_sha256"] == manifest["checkpoint"]["sha256"]
    assert gpu.names().count("execute_async_v3") > 0 and not gpu.streams  # engines ran, every stream destroyed
