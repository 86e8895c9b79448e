"""export.artifacts, the one table of export formats and artifacts: --backends means what it says (an export with
--backends onnx writes no OpenVINO file), an unknown backend is exit 2 with one line, and the command-line choices,
package check, drift pairs and accuracy-control targets all come from the table."""
from __future__ import annotations

import json

import pytest

from export import artifacts
from export.artifacts import FORMATS, planned


def test_each_format_writes_its_own_artifacts_and_what_they_are_built_from():
    assert list(planned(("onnx",), True, True, ("u8", "s8"))) == [
        "model_fp32.onnx", "model_int8_s8.onnx", "model_int8_u8.onnx", "model_fp16.onnx"]
    assert list(planned(("openvino",), True, False, ("u8", "s8"))) == [
        "model_fp32.onnx", "model_fp32.xml", "model_int8.xml"]  # the FP32 ONNX always: every other comes from it
    # TensorRT alone: its engines and their ONNX sources (s8 QDQ, FP16), not the u8 model ONNX Runtime CPUs use
    assert list(planned(("tensorrt",), True, True, ("u8", "s8"))) == [
        "model_fp32.onnx", "model_int8_s8.onnx", "model_fp16.onnx", "model_int8.engine", "model_fp16.engine"]
    assert list(planned(("onnx", "openvino"), False, False, ("u8", "s8"))) == ["model_fp32.onnx", "model_fp32.xml"]
    # --bf16: the FP32 IR again with bf16 compute asked of CPUs, compared with the FP32 IR (OpenVINO only)
    assert list(planned(("onnx", "openvino"), False, False, ("u8", "s8"), bf16=True)) == [
        "model_fp32.onnx", "model_fp32.xml", "model_bf16.xml"]
    assert list(planned(("onnx",), False, False, ("u8", "s8"), bf16=True)) == ["model_fp32.onnx"]
    assert artifacts.BY_NAME["model_bf16.xml"].reference == "model_fp32.xml"


def test_bf16_needs_openvino_and_is_a_flag():
    from pathlib import Path

    from export.__main__ import build_parser, config_from_args

    with pytest.raises(ValueError, match="add openvino to --backends"):
        config_from_args(build_parser().parse_args(["--checkpoint", "c.pt", "--out", "o", "--bf16", "--backends", "onnx"]))
    config = config_from_args(build_parser().parse_args(["--checkpoint", "c.pt", "--out", "o", "--bf16"]))
    assert config.bf16 and "model_bf16.xml" in config.artifacts and config.out == Path("o")
    assert not config_from_args(build_parser().parse_args(["--checkpoint", "c.pt", "--out", "o"])).bf16


def test_every_artifact_names_a_format_and_an_artifact_it_comes_from():
    for a in artifacts.ARTIFACTS:
        assert a.format in FORMATS and a.precision in ("fp32", "int8", "fp16", "bf16")
        assert a.source is None or a.source in artifacts.BY_NAME
        assert a.reference is None or artifacts.BY_NAME[a.reference].precision == "fp32"


def test_unknown_backend_is_exit_2_with_one_line_naming_the_choices(capsys):
    from export.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", "x.pt", "--out", "o", "--backends", "onnx,tflite"])
    assert e.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'tflite' is not a backend" in error and "onnx, openvino, tensorrt" in error


def test_missing_packages_come_from_the_formats(monkeypatch):
    import importlib.util

    from export.__main__ import _missing_packages

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("openvino", "nncf") else real(name))
    assert _missing_packages(("onnx", "tensorrt"), True) == ""
    assert "needs openvino:" in _missing_packages(("openvino",), False)
    assert "needs openvino, nncf:" in _missing_packages(("onnx", "openvino"), True)


def test_runtime_backend_choices_are_the_backend_table():
    from runtime.__main__ import build_parser
    from runtime.backends import BACKENDS

    (action,) = [a for a in build_parser()._actions if a.dest == "backend"]
    assert action.choices == ("auto", *BACKENDS)


@pytest.mark.slow  # a whole export
def test_backends_onnx_writes_no_openvino_file(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from dualpath.exitcodes import OK
    from export.__main__ import main
    from export_helpers import make_checkpoint

    out = tmp_path / "out"
    assert main(["--checkpoint", str(make_checkpoint(tmp_path / "a.pt")), "--out", str(out), "--backends", "onnx",
                 "--int8", "--fp16", "--calib-n", "16", "--drift-n", "20", "--severities", "",
                 "--data-root", str(tmp_path / "data"), "--threads", "1",
                 "--budget", "ssim=1", "--budget", "accuracy=1", "--budget", "macro_map=1",
                 "--budget", "label_flip_rate=1"]) == OK  # untrained
    manifest = json.loads((out / "manifest.json").read_text())
    models = {n for n in manifest["files"] if n.startswith("model_")}
    assert models == {"model_fp32.onnx", "model_int8_u8.onnx", "model_int8_s8.onnx", "model_fp16.onnx"}
    assert not [p for p in out.iterdir() if p.suffix in (".xml", ".bin") or p.name.startswith("build_tensorrt")]
    assert set(manifest["drift"]) == {"model_int8_u8.onnx", "model_int8_s8.onnx", "model_fp16.onnx"}


def test_openvino_alone_ranks_layers_on_a_temporary_qdq_model(exported, tmp_path):
    """Accuracy control ranks layers on a QDQ model; an export that writes none (--backends openvino) quantizes one
    aside, the same as the one it would have written."""
    import dataclasses
    import shutil

    import onnx

    from export import context, control_step
    from export.quantize_onnx import float_nodes

    config, _, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(config.out, copy)
    alone = dataclasses.replace(config, out=copy, backends=("openvino",), accuracy_control=True)
    assert context.qdq_variants(alone) == []
    batches, _ = context.calibration_batches(config)
    floats = float_nodes(onnx.load(str(config.out / "model_fp32.onnx")))
    ranked_aside = control_step.rank_layers(alone, copy / "model_fp32.onnx", batches, floats)
    assert ranked_aside == control_step.rank_layers(config, config.out / "model_fp32.onnx", batches, floats)  # on u8
