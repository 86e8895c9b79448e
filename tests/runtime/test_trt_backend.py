"""The TensorRT path end to end with fake tensorrt and cuda modules that record their calls (tests/trt_fakes.py):
build -> sidecar -> load (fit check) -> infer (device copies) -> close (buffers and stream freed), on the tiny model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dualpath import contract
from runtime.backends import BackendError, load_backend, trt_engine

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_backends import _feed, write_tiny_model  # noqa: E402  (same folder)
from trt_fakes import D2H, H2D, FakeGpu  # noqa: E402  (tests/)


@pytest.fixture
def built(tmp_path, monkeypatch):
    """The tiny model built into an engine by trt_engine.build() under fake TensorRT 10.3.0."""
    gpu = FakeGpu("10.3.0").install(monkeypatch)
    onnx_path = write_tiny_model(tmp_path / "tiny.onnx")
    metadata = trt_engine.model_metadata(onnx_path)
    sidecar = trt_engine.build(onnx_path, tmp_path / "tiny.engine", metadata, max_batch=4,
                               timing_cache=tmp_path / "tensorrt.cache")
    return gpu, tmp_path / "tiny.engine", sidecar


def test_build_asks_tensorrt_for_the_profile_and_flags_and_writes_the_sidecar(built, tmp_path):
    gpu, engine, sidecar = built
    assert ("create_network", 0) in gpu.calls  # TensorRT 10: not strongly typed
    assert ("set_flag", "FP16") in gpu.calls and ("set_flag", "INT8") not in gpu.calls  # no Q/DQ nodes: no INT8
    assert ("set_shape", "image", (1, 3, 64, 64), (1, 3, 64, 64), (4, 3, 64, 64)) in gpu.calls
    assert (tmp_path / "tensorrt.cache").read_bytes() == b"cache"
    on_disk = json.loads((tmp_path / "tiny.engine.json").read_text())
    assert on_disk["tensorrt_version"] == "10.3.0" and on_disk["onnx"] == "tiny.onnx"
    assert on_disk["onnx_sha256"] == trt_engine.file_sha256(tmp_path / "tiny.onnx")
    assert on_disk["engine_sha256"] == trt_engine.file_sha256(engine) and on_disk["max_batch"] == 4
    assert json.loads(on_disk["metadata"]["precision"]) == "fp16"  # the engine's own, not the ONNX's "fp32"
    assert trt_engine.read_sidecar(engine) == sidecar


def test_strongly_typed_on_tensorrt_11(tmp_path, monkeypatch):
    gpu = FakeGpu("11.4.1").install(monkeypatch)
    onnx_path = write_tiny_model(tmp_path / "tiny.onnx")
    sidecar = trt_engine.build(onnx_path, tmp_path / "t.engine", trt_engine.model_metadata(onnx_path))
    assert ("create_network", 1) in gpu.calls and "set_flag" not in gpu.names()
    assert sidecar.facts["strongly_typed"] and json.loads(sidecar.metadata["precision"]) == "fp32"


def test_backend_infers_like_onnxruntime_and_close_frees_buffers_and_stream(built, tmp_path):
    gpu, engine, _ = built
    feed = _feed(3)
    with load_backend(tmp_path / "tiny.onnx", "onnxruntime", threads=1) as ort:
        expected = ort.infer(feed)
    be = load_backend(engine)
    assert be.name == "tensorrt" and be.metadata.class_names == contract.CLASS_NAMES
    out = be.infer(feed)
    for name in (contract.OUTPUT_PROBS, contract.OUTPUT_RECON):
        np.testing.assert_allclose(out[name], expected[name], rtol=1e-6, atol=1e-6)
    assert ("set_input_shape", "image", (3, 3, 64, 64)) in gpu.calls
    copies = [c[1] for c in gpu.calls if c[0] == "cudaMemcpyAsync"]
    assert copies == [H2D, D2H, D2H]  # one input in, two outputs back
    stream = be.stream
    be.infer(_feed(2))  # a smaller batch reuses the buffers
    assert gpu.names().count("cudaMalloc") == 3
    be.close()
    assert ("cudaStreamDestroy", stream) in gpu.calls and not gpu.streams
    assert gpu.memory == {}  # every device buffer freed
    be.close()  # twice is harmless
    assert gpu.names().count("cudaStreamDestroy") == 1


def test_engine_built_for_another_tensorrt_is_refused_before_tensorrt_reads_it(built, monkeypatch):
    _, engine, _ = built
    gpu = FakeGpu("10.7.0").install(monkeypatch)
    with pytest.raises(BackendError) as e:
        load_backend(engine)
    message = str(e.value)
    assert "built with TensorRT 10.3.0, this device has TensorRT 10.7.0" in message
    assert "jetson/build_engine.sh model_int8_s8.onnx" in message and "build_tensorrt_engine.py" in message
    assert "deserialize_cuda_engine" not in gpu.names()


def test_engine_built_for_another_gpu_is_refused(built, monkeypatch):
    _, engine, sidecar = built
    trt_engine.write_sidecar(engine, trt_engine.Sidecar(
        metadata=sidecar.metadata, target=trt_engine.Target("10.3.0", "Orin", "8.7")))
    monkeypatch.setattr(trt_engine, "gpu", lambda device=0: ("NVIDIA H200", "9.0"))
    with pytest.raises(BackendError, match=r"compute capability 8.7 \(Orin\), this GPU is 9.0 \(NVIDIA H200\)"):
        load_backend(engine)


def test_engine_without_sidecar_or_unreadable_is_refused(built):
    _, engine, _ = built
    sidecar = engine.with_name(engine.name + ".json")
    sidecar.write_text("{not json")
    with pytest.raises(BackendError, match="cannot read the engine sidecar"):
        load_backend(engine)
    sidecar.unlink()
    with pytest.raises(BackendError, match="has no sidecar"):
        load_backend(engine)


def test_the_build_script_runs_alone(built, tmp_path, capsys):
    """build_tensorrt_engine.py is this module copied: its main() builds with the metadata.json beside the ONNX."""
    (tmp_path / "metadata.json").write_text(json.dumps(trt_engine.model_metadata(tmp_path / "tiny.onnx")))
    assert trt_engine.main([str(tmp_path / "tiny.onnx"), "--out", str(tmp_path / "b.engine"), "--no-fp16",
                            "--timing-cache", str(tmp_path / "c")]) == 0
    assert "built" in capsys.readouterr().out
    assert json.loads(trt_engine.read_sidecar(tmp_path / "b.engine").metadata["precision"]) == "fp32"
    assert trt_engine.main([str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x.engine")]) == 2


def test_an_engine_tensorrt_does_not_build_is_a_failed_run(built, tmp_path, monkeypatch, capsys):
    """Exit 1, as trtexec failing in jetson/build_engine.sh; no engine file is left behind."""
    import tensorrt

    monkeypatch.setattr(tensorrt.Builder, "build_serialized_network", lambda self, network, config: None)
    (tmp_path / "metadata.json").write_text(json.dumps(trt_engine.model_metadata(tmp_path / "tiny.onnx")))
    assert trt_engine.main([str(tmp_path / "tiny.onnx"), "--out", str(tmp_path / "f.engine")]) == 1
    assert "failed to build the engine" in capsys.readouterr().err and not (tmp_path / "f.engine").exists()
