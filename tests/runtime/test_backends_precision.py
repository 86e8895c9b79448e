"""OpenVINO runs an FP32 artifact in FP32: its CPU plugin otherwise picks bf16 on CPUs with AVX-512 BF16 / AMX (this
project's dev box), so the "FP32" reference of every OpenVINO drift report would not be FP32."""
from __future__ import annotations

import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnx")

from runtime.backends import BackendError, load_backend  # noqa: E402
from runtime.backends.metadata import ModelMetadata  # noqa: E402
from runtime.backends.ov import inference_precision  # noqa: E402
from test_backends import to_openvino_ir, write_tiny_model  # noqa: E402  (same folder)


@pytest.fixture(scope="module")
def irs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ov-precision")
    fp16 = ModelMetadata.from_contract(precision="fp16")
    return {"fp32": to_openvino_ir(write_tiny_model(d / "fp32.onnx"), d / "fp32.xml"),
            "fp16": to_openvino_ir(write_tiny_model(d / "fp16.onnx", metadata=fp16), d / "fp16.xml")}


def _device_default() -> str:
    import openvino as ov

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def test_fp32_artifact_runs_in_f32(irs):
    with load_backend(irs["fp32"], threads=1) as be:
        assert be.inference_precision == "f32"
    with load_backend(irs["fp32"], threads=1, precision="default") as be:
        assert be.inference_precision == _device_default()


def test_other_artifacts_keep_the_device_default(irs):
    with load_backend(irs["fp16"], threads=1) as be:
        assert be.inference_precision == _device_default()


def test_precision_choices():
    assert inference_precision("auto", "fp32", "CPU") == "f32"
    assert inference_precision("auto", "int8-nncf", "CPU") is None
    assert inference_precision("bf16", "fp32", "GPU") == "bf16"
    assert inference_precision("f32", "fp32", "AUTO") is None
    with pytest.raises(BackendError, match="precision"):
        inference_precision("fp8", "fp32", "CPU")
