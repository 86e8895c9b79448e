"""runtime.backends.trt_engine: the engine sidecar (one key spelling, old ones read), the check that an engine fits
this TensorRT and GPU (fake sidecars, fake machines), and jetson/build_engine.sh writing a sidecar the runtime accepts
(fake trtexec)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.backends.trt_engine import (
    Sidecar,
    Target,
    here,
    is_current,
    mismatches,
    normalise_compute_capability,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

ORIN = Target("10.3.0", "Orin", "8.7")


@pytest.mark.parametrize(
    "value, expected",
    [("8.7", "8.7"), (8.7, "8.7"), ([8, 7], "8.7"), ((9, 0), "9.0"), ("sm_87", "8.7"), ("87", "8.7"),
     ("12.0", "12.0"), (None, None), ("", None), ("x.y", None)],
)
def test_compute_capability_spellings(value, expected):
    assert normalise_compute_capability(value) == expected


def test_same_version_and_gpu_pass():
    assert mismatches(ORIN, ORIN) == ([], [])


def test_other_tensorrt_version_is_a_problem():
    problems, _ = mismatches(ORIN, Target("10.7.0", "Orin", "8.7"))
    assert problems == ["built with TensorRT 10.3.0, this device has TensorRT 10.7.0"]


def test_other_gpu_architecture_is_a_problem():
    problems, _ = mismatches(ORIN, Target("10.3.0", "NVIDIA H100 80GB HBM3", [9, 0]))
    assert len(problems) == 1 and "compute capability 8.7 (Orin)" in problems[0] and "9.0 (NVIDIA H100" in problems[0]


def test_other_gpu_model_of_the_same_architecture_only_warns():
    problems, warnings = mismatches(Target("10.3.0", "Orin NX", "8.7"), Target("10.3.0", "Orin Nano", "8.7"))
    assert problems == [] and "rebuild here for full speed" in warnings[0]


def test_what_cannot_be_checked_is_a_warning():
    problems, warnings = mismatches(Target(gpu_name="Orin"), Target())
    assert problems == [] and len(warnings) == 2


def test_sidecar_has_one_spelling_and_reads_the_old_ones(tmp_path):
    engine = tmp_path / "m.engine"
    written = Sidecar(metadata={"image_size": "64"}, target=ORIN, onnx="m.onnx", onnx_sha256="ab",
                      builder="test", facts={"max_batch": 4})
    write_sidecar(engine, written)
    on_disk = json.loads((tmp_path / "m.engine.json").read_text())
    assert on_disk["gpu_name"] == "Orin" and "gpu" not in on_disk and on_disk["max_batch"] == 4
    assert read_sidecar(engine) == written
    # export/tensorrt_build.py wrote "gpu" (and "unknown ..." without cuda-python); jetson/sidecar.py both keys
    old = {"tensorrt_version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "metadata": {}, "fp16": True}
    assert Sidecar.from_dict(old).target == ORIN and Sidecar.from_dict(old).facts == {"fp16": True}
    assert Sidecar.from_dict(old | {"gpu_name": "Orin NX"}).target.gpu_name == "Orin NX"
    unknown = Sidecar.from_dict({"gpu": "unknown (cuda-python not installed)", "compute_capability": "unknown"})
    assert unknown.target == Target()


def test_sidecar_next_to_the_engine_under_either_name(tmp_path):
    engine = tmp_path / "model.plan"
    assert sidecar_path(engine) == tmp_path / "model.plan.json"  # where the builders write it
    (tmp_path / "model.json").write_text("{}")
    assert sidecar_path(engine) == tmp_path / "model.json"


def test_missing_or_unreadable_sidecar_says_how_to_rebuild(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(ValueError, match="has no sidecar m.engine.json: build the engine again"):
        read_sidecar(engine)
    (tmp_path / "m.engine.json").write_text("{not json")
    with pytest.raises(RuntimeError, match="cannot read the engine sidecar"):
        read_sidecar(engine, RuntimeError)
    (tmp_path / "m.engine.json").write_text("[]")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_sidecar(engine)


def test_an_engine_is_current_for_its_onnx_tensorrt_and_gpu_only(tmp_path):
    engine, onnx = tmp_path / "m.engine", tmp_path / "m.onnx"
    onnx.write_bytes(b"model")
    assert not is_current(engine, onnx, ORIN)  # nothing built yet
    engine.write_bytes(b"engine")
    write_sidecar(engine, Sidecar(metadata={}, target=ORIN, onnx_sha256="0" * 64))
    assert not is_current(engine, onnx, ORIN)  # built from another ONNX
    from runtime.backends.trt_engine import file_sha256

    write_sidecar(engine, Sidecar(metadata={}, target=ORIN, onnx_sha256=file_sha256(onnx)))
    assert is_current(engine, onnx, ORIN)
    assert not is_current(engine, onnx, Target("10.7.0", "Orin", "8.7"))
    assert not is_current(engine, onnx, Target("10.3.0", None, None))  # GPU unknown: rebuild rather than guess


class _DriverWithoutGpu:
    """libcuda.so.1 loads (a driver is installed) but cuInit finds no device: CUDA_ERROR_NO_DEVICE."""

    def cuInit(self, flags):
        return 100


def _no_driver(name):
    raise OSError(f"{name}: cannot open shared object file: No such file or directory")


@pytest.mark.parametrize("cdll", [_no_driver, lambda name: _DriverWithoutGpu()], ids=["no driver", "no device"])
def test_this_machine_without_tensorrt_or_a_gpu_is_unknown_not_an_error(monkeypatch, cdll):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # `import tensorrt` raises ImportError, as where it is absent
    monkeypatch.setattr("runtime.backends.trt_engine.ctypes.CDLL", cdll)
    assert here() == Target(None, None, None)  # every field unknown (None), and no exception
    assert here("10.3.0") == Target("10.3.0", None, None)  # a version given is kept; the GPU stays unknown


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
        "tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7", "built_at": None,
        # precision: the engine's own (Q/DQ nodes; --fp16 on TensorRT 10), not what metadata.json says
        "metadata": {"class_names": '["ladle", "whisk"]', "image_size": "64", "precision": '"int8-qdq+fp16"'},
        "onnx": "model_int8_s8.onnx",
    }
    calls = (tmp_path / "calls.txt").read_text()
    assert "--int8 --fp16" in calls and "--maxShapes=image:1x3x64x64" in calls  # TensorRT 10: weakly typed flags
    assert "gpu" not in sidecar  # one spelling
    built = read_sidecar(tmp_path / "model_int8_s8.engine")  # what the TensorRT backend reads
    assert mismatches(built.target, ORIN) == ([], [])

    missing = build(tmp_path / "nope.onnx")
    assert missing.returncode == 2 and "no such ONNX file" in missing.stderr  # bad input


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
