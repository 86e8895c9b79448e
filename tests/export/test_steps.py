"""The export as a list of steps (export.pipeline.steps): every planned artifact is written by exactly one run of its
format's step, accuracy control comes after what it tunes and before what is built from it, and a new format is one
step module plus its entries in export/artifacts.py. The command line is built from ExportConfig (dualpath.cli), and
the trtexec command line is one function (runtime.backends.trt_engine.trtexec_args) for the export's script and
jetson/build_engine.sh."""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from export import artifacts
from export.artifacts import FORMATS, Artifact, Format
from export.config import ExportConfig, export_config
from export.context import qdq_source_for_openvino

ROOT = Path(__file__).resolve().parents[2]
FORMAT_OPTIONS = [dict(backends=b, int8=i8, fp16=f16, ov_int8=ov, qdq_variants=v)
                  for b in (("onnx",), ("openvino",), ("tensorrt",), ("onnx", "openvino", "tensorrt"))
                  for i8 in (False, True) for f16 in (False, True) for ov in ("qdq", "nncf")
                  for v in (("u8", "s8"), ("s8",))] + [
    dict(backends=b, int8=i8, fp16=True, ov_int8="qdq", qdq_variants=("u8", "s8"), bf16=True)  # --bf16: OpenVINO's
    for b in (("openvino",), ("onnx", "openvino", "tensorrt")) for i8 in (False, True)]


def _runs(config):
    from export.pipeline import steps

    return [(step.__module__, [a.name for a in arts]) for step, arts in steps(config)]


@pytest.mark.parametrize("options", FORMAT_OPTIONS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_every_planned_artifact_is_written_by_one_run_of_its_formats_step(options):
    config = ExportConfig(checkpoint=Path("c.pt"), out=Path("o"), **options)
    runs = _runs(config)
    written = [(module, name) for module, names in runs if module not in ("export.control_step", "export.gate_step")
               for name in names]
    assert [name for _, name in written] == list(config.artifacts)  # each once, in export.artifacts' order
    assert all(module == FORMATS[config.artifacts[name].format].step for module, name in written)
    assert runs[-1] == ("export.gate_step", list(config.artifacts))  # the gate last, on every artifact
    order = [name for _, names in runs[:-1] for name in names]
    controls = [i for i, (module, _) in enumerate(runs) if module == "export.control_step"]
    assert len(controls) == (1 if config.int8 else 0)
    if controls:
        tuned = runs[controls[0]][1]
        before = [name for _, names in runs[:controls[0]] for name in names]
        after = [name for _, names in runs[controls[0] + 1:-1] for name in names]
        assert set(tuned) <= set(before)  # tuned once written
        built_from_tuned = {n for n, a in config.artifacts.items() if a.source in tuned}
        if "model_int8.xml" in config.artifacts and qdq_source_for_openvino(config):  # from the QDQ model as shipped
            built_from_tuned.add("model_int8.xml")
        assert built_from_tuned <= set(after)
    assert order[0] == "model_fp32.onnx"


def test_formats_name_a_step_module_with_the_step_signature():
    for name, fmt in FORMATS.items():
        module = importlib.import_module(fmt.step)
        assert callable(module.step), name
        if any(a.controlled for a in artifacts.ARTIFACTS if a.format == name):
            assert callable(module.quantize), name  # accuracy control and QAT rebuild its INT8 artifacts with it


def test_a_new_format_is_one_step_module_and_its_table_entries(tmp_path, monkeypatch):
    """A format added to FORMATS (its step module) and ARTIFACTS runs in the export loop with nothing else changed;
    its recipes land in the manifest."""
    from export import gate_step, pipeline
    from export.context import Context

    calls = []

    def fake_step(config, ctx, arts):
        calls.append((arts[0].format, [a.name for a in arts]))
        for a in arts:
            (config.out / a.name).write_text(a.name)
        return {a.name: {"format": a.format} for a in arts if a.precision != "fp32"}

    module = types.ModuleType("fake_format_step")
    module.step = fake_step
    monkeypatch.setitem(sys.modules, "fake_format_step", module)
    monkeypatch.setitem(FORMATS, "onnx", dataclasses.replace(FORMATS["onnx"], step="fake_format_step"))
    monkeypatch.setitem(FORMATS, "tflite", Format("TFLite FP32 and FP16", "fake_format_step"))
    monkeypatch.setattr(artifacts, "ARTIFACTS", artifacts.ARTIFACTS + (
        Artifact("model_fp32.tflite", "tflite", "fp32"),
        Artifact("model_fp16.tflite", "tflite", "fp16", reference="model_fp32.tflite")))
    monkeypatch.setattr(gate_step, "step", lambda config, ctx, arts: calls.append(("gate", [a.name for a in arts])) or {})
    (tmp_path / "c.pt").write_bytes(b"checkpoint")
    config = ExportConfig(checkpoint=tmp_path / "c.pt", out=tmp_path, backends=("onnx", "tflite"), fp16=True)
    manifest = pipeline.build_all(config, Context(None, {}, lambda _: None, budgets={}))
    assert calls == [("onnx", ["model_fp32.onnx", "model_fp16.onnx"]),
                     ("tflite", ["model_fp32.tflite", "model_fp16.tflite"]), ("gate", list(config.artifacts))]
    assert manifest["recipes"] == {"model_fp16.onnx": {"format": "onnx"}, "model_fp16.tflite": {"format": "tflite"}}


def test_export_config_nests_the_stage_configs_and_takes_the_flat_flags():
    config = export_config(checkpoint="c", out="o", calib_n=16, calib_seed=1_000_009, drift_n=20, severities=(),
                           workers=2, data_root=Path("d"), control_margin=0.25, min_int8_share=0.7, bench_iters=20)
    assert (config.calibration.n, config.calibration.seed) == (16, 1_000_009)
    assert (config.drift.n, config.drift.severities, config.drift.workers, config.data_root) == (20, (), 2, Path("d"))
    assert (config.control.margin, config.control.min_int8_share, config.bench.iters) == (0.25, 0.7, 20)
    assert export_config(checkpoint="c", out="o") == ExportConfig(checkpoint="c", out="o")
    with pytest.raises(TypeError, match="calib_m"):
        export_config(checkpoint="c", out="o", calib_m=3)


def test_the_command_line_is_exportconfigs_fields():
    """Every flag of python -m export fills a field of ExportConfig (dualpath.cli.fill), none retyped: no flag given,
    the config is ExportConfig's defaults."""
    from dualpath.cli import flag_names
    from export.__main__ import build_parser, config_from_args
    from runtime.drift.budgets import DEFAULT_BUDGETS

    parser = build_parser()
    dests = {a.dest for a in parser._actions} - {"help", "budget", "budgets_file"}  # budgets: runtime.drift's parser
    assert dests <= set(flag_names(ExportConfig))
    args = parser.parse_args(["--checkpoint", "c.pt", "--out", "o"])
    assert config_from_args(args) == ExportConfig(checkpoint=Path("c.pt"), out=Path("o"), budgets=dict(DEFAULT_BUDGETS))
    args = parser.parse_args(["--checkpoint", "c.pt", "--out", "o", "--calib-n", "7", "--workers", "3",
                              "--qdq-variants", "s8", "--bench-rounds", "1"])
    config = config_from_args(args)
    assert (config.calibration.n, config.workers, config.qdq_variants, config.bench.rounds) == (7, 3, ("s8",), 1)


def test_trtexec_command_is_one_function_for_the_export_and_the_jetson_script(tmp_path):
    from functools import partial

    from export.tensorrt_step import build_script
    from runtime.backends import trt_engine

    trtexec_args = partial(trt_engine.trtexec_args, image_size=64)
    assert trtexec_args("m.onnx", "m.engine", 8, qdq=True) == [
        "--onnx=m.onnx", "--saveEngine=m.engine", "--int8", "--fp16", "--minShapes=image:1x3x64x64",
        "--optShapes=image:1x3x64x64", "--maxShapes=image:8x3x64x64"]
    assert "--int8" not in trtexec_args("m.onnx", "m.engine", 8, qdq=False)
    assert not {"--int8", "--fp16"} & set(trtexec_args("m.onnx", "m.engine", 8, qdq=True, tensorrt_major=11))
    engines = [artifacts.BY_NAME["model_int8.engine"], artifacts.BY_NAME["model_fp16.engine"]]
    script = build_script({"model_int8.engine": "python3 build ..."}, engines, 32)
    assert ("# trtexec --onnx=model_int8_s8.onnx --saveEngine=model_int8.engine --int8 --fp16 "
            "--minShapes=image:1x3x64x64 --optShapes=image:1x3x64x64 --maxShapes=image:32x3x64x64 "
            "--timingCacheFile=tensorrt.cache\n") in script
    spec = importlib.util.spec_from_file_location("jetson_sidecar", ROOT / "jetson" / "sidecar.py")
    sidecar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sidecar)
    fp16 = tmp_path / "model_fp16.onnx"  # no ONNX reader needed: without onnx the name decides, with it the graph
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["probs"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3, 64, 64])])
    onnx.save(helper.make_model(graph), fp16)
    assert sidecar.trtexec_command(str(fp16), "e.engine", 4, 512, 10) == trtexec_args(
        str(fp16), "e.engine", 4, qdq=False, extra=("--memPoolSize=workspace:512", "--skipInference"))
