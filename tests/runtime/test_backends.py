"""runtime.backends on tiny hand-built models (no torch): metadata round trip, inference, errors."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from dualpath import contract
from runtime.backends import BackendError, ModelMetadata, load_backend, resolve

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def write_tiny_model(path, seed: int = 0, metadata: ModelMetadata | None = None, scale: float = 1.0):
    """image -> probs = sigmoid(GAP(image) @ W), recon = tanh(scale * image): the deployed model's interface."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(size=(3, contract.NUM_CLASSES)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Mul", ["image", "scale"], ["scaled"]),
        helper.make_node("Tanh", ["scaled"], ["recon"]),
    ]
    s = contract.IMAGE_SIZE
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, s, s])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", contract.NUM_CLASSES]),
         helper.make_tensor_value_info("recon", TensorProto.FLOAT, ["batch", 3, s, s])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(scale, np.float32), "scale")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for key, value in (metadata or ModelMetadata.from_contract(precision="fp32")).to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


def to_openvino_ir(onnx_path, xml_path):
    import openvino as ov

    from export.openvino_export import save_ir
    from runtime.backends.ov import onnx_props

    save_ir(ov.convert_model(str(onnx_path)), xml_path, onnx_props(onnx_path))
    return xml_path


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


def _feed(n=2):
    x = np.random.default_rng(1).normal(size=(n, 3, contract.IMAGE_SIZE, contract.IMAGE_SIZE)).astype(np.float32)
    return {contract.INPUT_NAME: x}


def test_metadata_round_trips_through_props():
    meta = ModelMetadata.from_contract(training_metrics={"macro_map": 0.5}, checkpoint_sha256="ab")
    back = ModelMetadata.from_props(meta.to_props())
    assert back == meta
    assert back.class_names == contract.CLASS_NAMES and back.extra["training_metrics"]["macro_map"] == 0.5


def test_onnxruntime_backend_reads_metadata_and_infers(tiny_onnx):
    with load_backend(tiny_onnx, threads=1) as be:
        assert be.name == "onnxruntime"
        assert be.metadata.class_names == contract.CLASS_NAMES
        assert be.metadata.image_size == contract.IMAGE_SIZE and be.metadata.mean == contract.MEAN
        out = be.infer(_feed(3))
    assert out["probs"].shape == (3, contract.NUM_CLASSES) and out["recon"].shape == (3, 3, 64, 64)
    assert np.allclose(out["recon"], np.tanh(_feed(3)["image"]), atol=1e-6)


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_backend_matches_onnxruntime(tiny_onnx, tmp_path):
    xml = to_openvino_ir(tiny_onnx, tmp_path / "tiny.xml")
    with load_backend(xml) as ov_be, load_backend(tiny_onnx) as ort_be:
        assert ov_be.name == "openvino" and ov_be.metadata == ort_be.metadata
        a, b = ov_be.infer(_feed()), ort_be.infer(_feed())
    for k in ("probs", "recon"):
        assert np.allclose(a[k], b[k], atol=1e-5)


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_compiles_one_static_model_per_batch_size_then_falls_back_to_dynamic(tiny_onnx, tmp_path):
    from runtime.backends import ov as ov_backend

    xml = to_openvino_ir(tiny_onnx, tmp_path / "tiny.xml")
    with load_backend(tiny_onnx) as ref, load_backend(xml) as be:
        sizes = list(range(1, ov_backend.MAX_STATIC_BATCHES + 3))
        for n in sizes + [1, 2]:
            out, want = be.infer(_feed(n)), ref.infer(_feed(n))
            assert out["probs"].shape == (n, contract.NUM_CLASSES)
            assert np.allclose(out["probs"], want["probs"], atol=1e-5)
            assert np.allclose(out["recon"], want["recon"], atol=1e-5)
        static = {k: c.inputs[0].get_partial_shape() for k, (c, _) in be._requests.items() if k is not None}
        assert sorted(static) == sizes[: ov_backend.MAX_STATIC_BATCHES]
        assert all(s.is_static and s[0].get_length() == k for k, s in static.items())
        assert be._requests[None][0].inputs[0].get_partial_shape()[0].is_dynamic  # the sizes past the cap
    with ov_backend.OpenVinoBackend(xml, static_batch=False) as be:
        be.infer(_feed(3))
        assert list(be._requests) == [None]


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino not installed")
def test_openvino_reads_onnx_metadata_directly(tiny_onnx):
    with load_backend(tiny_onnx, backend="openvino") as be:
        assert be.metadata.class_names == contract.CLASS_NAMES


def test_wrong_input_is_a_clear_value_error(tiny_onnx):
    with load_backend(tiny_onnx) as be:
        with pytest.raises(ValueError, match="takes one input 'image'"):
            be.infer({"x": _feed()["image"]})
        with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
            be.infer({"image": np.zeros((1, 3, 32, 32), np.float32)})


def test_missing_file_unknown_type_and_unknown_backend(tmp_path, tiny_onnx):
    with pytest.raises(BackendError, match="no model file"):
        load_backend(tmp_path / "nope.onnx")
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(BackendError, match="unknown model file type"):
        load_backend(other)
    with pytest.raises(BackendError, match="unknown backend"):
        load_backend(tiny_onnx, backend="tflite")
    with pytest.raises(BackendError, match="cannot run .onnx"):
        resolve(tiny_onnx, "tensorrt")


def test_missing_backend_package_says_what_to_install(tiny_onnx, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnxruntime", "openvino") else real(name, *a))
    with pytest.raises(BackendError, match="pip install onnxruntime"):
        load_backend(tiny_onnx)
    with pytest.raises(BackendError, match="not installed: pip install openvino"):
        load_backend(tiny_onnx, backend="openvino")


def test_model_without_metadata_is_refused(tmp_path):
    path = write_tiny_model(tmp_path / "bare.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    with pytest.raises(BackendError, match="python -m export"):
        load_backend(path)


def test_corrupt_model_file_is_a_backend_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="cannot load"):
        load_backend(bad)


def test_tensorrt_engine_without_sidecar_is_refused(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    from runtime.backends.trt_engine import read_sidecar

    with pytest.raises(BackendError, match="sidecar"):
        read_sidecar(engine, BackendError)
    # A hand-built engine's model.json is read too.
    (tmp_path / "m.json").write_text('{"tensorrt_version": "10.3.0"}')
    assert read_sidecar(engine).target.tensorrt_version == "10.3.0"


def test_importing_backends_leaves_torch_out():
    import subprocess

    code = "import runtime.backends, runtime.drift, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_onnxruntime_auto_device_takes_the_best_installed_provider():
    from runtime.backends import BackendError
    from runtime.backends.ort import _providers

    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _providers("auto", cpu_only) == ["CPUExecutionProvider"]
    assert _providers("auto", gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert _providers("cpu", gpu) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        _providers("cuda", cpu_only)
    with pytest.raises(BackendError, match="'auto', 'cpu' or 'cuda'"):
        _providers("tpu", cpu_only)
