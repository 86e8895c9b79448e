"""TensorRT engines built for another TensorRT version or GPU are refused with how to rebuild (fake sidecars)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.app import (
    RunError,
    check_engine,
    engine_mismatches,
    engine_sidecar_path,
    normalise_compute_capability,
    running_tensorrt,
)

ORIN = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}


@pytest.mark.parametrize(
    "value, expected",
    [("8.7", "8.7"), (8.7, "8.7"), ([8, 7], "8.7"), ((9, 0), "9.0"), ("sm_87", "8.7"), ("87", "8.7"),
     ("12.0", "12.0"), (None, None), ("", None), ("x.y", None)],
)
def test_compute_capability_spellings(value, expected):
    assert normalise_compute_capability(value) == expected


def test_same_version_and_gpu_pass():
    assert engine_mismatches(ORIN, dict(ORIN)) == ([], [])


def test_other_tensorrt_version_is_a_problem():
    problems, _ = engine_mismatches(ORIN, ORIN | {"tensorrt_version": "10.7.0"})
    assert problems == ["built with TensorRT 10.3.0, this device has TensorRT 10.7.0"]


def test_other_gpu_architecture_is_a_problem():
    running = {"tensorrt_version": "10.3.0", "gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": [9, 0]}
    problems, _ = engine_mismatches(ORIN, running)
    assert len(problems) == 1 and "compute capability 8.7 (Orin)" in problems[0] and "9.0 (NVIDIA H100" in problems[0]


def test_the_exports_sidecar_spelling_gpu_is_read_too():
    exported = {"tensorrt_version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7"}
    problems, _ = engine_mismatches(exported, ORIN | {"compute_capability": "9.0", "gpu_name": "H100"})
    assert "(Orin)" in problems[0]
    unknown = {"tensorrt_version": "10.3.0", "gpu": "unknown (cuda-python not installed)", "compute_capability": "unknown"}
    assert engine_mismatches(unknown, dict(ORIN))[0] == []


def test_other_gpu_model_of_the_same_architecture_only_warns():
    problems, warnings = engine_mismatches(ORIN | {"gpu_name": "Orin NX"}, ORIN | {"gpu_name": "Orin Nano"})
    assert problems == [] and "rebuild here for full speed" in warnings[0]


def test_what_cannot_be_checked_is_a_warning():
    problems, warnings = engine_mismatches({"gpu_name": "Orin"}, {"tensorrt_version": None, "compute_capability": None})
    assert problems == [] and len(warnings) == 2


def test_check_engine_refuses_with_how_to_rebuild(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized")
    (tmp_path / "model.engine.json").write_text(json.dumps(ORIN))
    check_engine(engine, running=dict(ORIN))  # fine here
    with pytest.raises(RunError) as e:
        check_engine(engine, running=ORIN | {"tensorrt_version": "10.7.0", "compute_capability": "8.6"})
    message = str(e.value)
    assert "TensorRT 10.3.0" in message and "compute capability 8.7" in message
    assert "jetson/build_engine.sh model_int8_s8.onnx" in message and "build_tensorrt_engine.py" in message


def test_sidecar_next_to_the_engine_under_either_name(tmp_path):
    engine = tmp_path / "model.plan"
    assert engine_sidecar_path(engine) == tmp_path / "model.plan.json"  # where the export writes it
    (tmp_path / "model.json").write_text("{}")
    assert engine_sidecar_path(engine) == tmp_path / "model.json"


def test_unreadable_sidecar_is_an_error_and_a_missing_one_is_left_to_the_backend(tmp_path, caplog):
    engine = tmp_path / "m.engine"
    check_engine(engine, running=dict(ORIN))
    assert "no sidecar" in caplog.text
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(RunError, match="cannot read the engine sidecar"):
        check_engine(engine, running=dict(ORIN))


def test_running_environment_has_the_sidecar_keys_even_without_tensorrt_or_a_gpu():
    running = running_tensorrt()
    assert set(running) == {"tensorrt_version", "gpu_name", "compute_capability"}


FAKE_TRTEXEC = """#!/usr/bin/env bash
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec $*"
for a in "$@"; do
  case "$a" in --saveEngine=*) printf 'engine' > "${a#--saveEngine=}" ;; esac
done
echo "[I] Selected Device: Orin"
echo "[I] Compute Capability: 8.7"
echo "[I] TensorRT version: 10.3.0"
echo "args: $*" >> "$(dirname "$0")/calls.txt"
"""


def test_build_engine_script_runs_trtexec_and_writes_the_sidecar(tmp_path):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    qdq = [helper.make_node("QuantizeLinear", ["image", "s", "z"], ["q"]),
           helper.make_node("DequantizeLinear", ["q", "s", "z"], ["probs"])]
    scale = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    graph = helper.make_graph(qdq, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3, 64, 64])], scale)
    done, build = _build_with_fake_trtexec(tmp_path, graph, "model_int8_s8.onnx")
    assert done.returncode == 0, done.stderr
    sidecar = json.loads((tmp_path / "model_int8_s8.engine.json").read_text())
    assert sidecar | {"built_at": None} == sidecar | {
        "tensorrt_version": "10.3.0", "gpu_name": "Orin", "gpu": "Orin", "compute_capability": "8.7", "built_at": None,
        # precision: the engine's own (Q/DQ nodes; --fp16 on TensorRT 10), not what metadata.json says
        "metadata": {"class_names": '["ladle", "whisk"]', "image_size": "64", "precision": '"int8-qdq+fp16"'},
        "onnx": "model_int8_s8.onnx",
    }
    calls = (tmp_path / "calls.txt").read_text()
    assert "--int8 --fp16" in calls and "--maxShapes=image:1x3x64x64" in calls  # TensorRT 10: weakly typed flags
    check_engine(tmp_path / "model_int8_s8.engine", running=dict(ORIN))  # the runtime accepts what it wrote

    missing = build(tmp_path / "nope.onnx")
    assert missing.returncode == 1 and "no such ONNX file" in missing.stderr


def test_build_engine_script_builds_an_fp16_engine_without_int8(tmp_path):
    """From model_fp16.onnx (no Q/DQ nodes) trtexec gets --fp16 only: with --int8 it would make up INT8 ranges."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Cast", ["image"], ["probs"], to=TensorProto.FLOAT)], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 3, 64, 64])],
                              [helper.make_tensor("w", TensorProto.FLOAT16, [2], [0.5, 1.0])])
    done, _ = _build_with_fake_trtexec(tmp_path, graph, "model_fp16.onnx")
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text()
    assert "--fp16" in calls and "--int8" not in calls
    sidecar = json.loads((tmp_path / "model_fp16.engine.json").read_text())
    assert sidecar["metadata"]["precision"] == '"fp16"'


def _build_with_fake_trtexec(tmp_path, graph, name: str):
    """Save `graph` as tmp_path/name with dualpath metadata and run jetson/build_engine.sh on it with a fake trtexec
    (it records its calls in calls.txt); returns the run and a function that runs the script on another path."""
    import onnx
    from onnx import helper

    model = helper.make_model(graph)
    helper.set_model_props(model, {"class_names": '["ladle", "whisk"]', "image_size": "64"})
    onnx.save(model, tmp_path / name)
    trtexec = tmp_path / "trtexec"
    trtexec.write_text(FAKE_TRTEXEC)
    trtexec.chmod(0o755)
    script = Path(__file__).resolve().parents[2] / "jetson" / "build_engine.sh"
    env = os.environ | {"TRTEXEC": str(trtexec), "PYTHON": sys.executable}

    def build(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([str(script), str(path)], env=env, capture_output=True, text=True)

    return build(tmp_path / name), build
