"""The u8 model's weight width (--u8-weights): 8-bit by default, 7-bit (ONNX Runtime's reduce_range) for CPUs with AVX2
only; the width travels in the model's metadata, and the runtime warns where 8-bit weights meet a CPU without VNNI."""
from __future__ import annotations

import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from export import quantize_onnx as q  # noqa: E402
from runtime.backends.base import saturation_note  # noqa: E402
from runtime.backends.metadata import ModelMetadata  # noqa: E402


def test_the_variant_takes_the_weight_width_and_refuses_others():
    assert q.variant("u8").reduce_range is False and "8-bit" in q.variant("u8").target
    seven = q.variant("u8", 7)
    assert seven.reduce_range is True and "7-bit" in seven.target and "AVX2" in seven.target
    assert q.variant("s8", 7) == q.VARIANTS["s8"]  # TensorRT's model keeps its 8-bit weights
    with pytest.raises(ValueError, match="8 or 7"):
        q.variant("u8", 6)
    from export.config import ExportConfig

    with pytest.raises(ValueError, match="u8_weights must be 8 or 7"):
        ExportConfig(checkpoint="x.pt", out="y", u8_weights=4)


@pytest.fixture(scope="module")
def u8_models(tmp_path_factory):
    """The tiny model's u8 QDQ model with 8-bit and 7-bit weights, from the same calibration ranges."""
    from tiny_qdq import cached_fp32, calibration_batches

    root = tmp_path_factory.mktemp("u8_weights")
    fp32 = cached_fp32(root)
    ranges = root / "ranges.json"
    q.calibrate(fp32, calibration_batches(), "minmax", ranges, root / "shared.json")
    from export.onnx_fp32 import embed_metadata

    proto = onnx.load(str(fp32))
    embed_metadata(proto, ModelMetadata.from_contract(precision="fp32"))  # as the export's FP32 model carries it
    models = {}
    for bits in (8, 7):
        models[bits] = root / f"model_int8_u8_w{bits}.onnx"
        q.write_variant(fp32, models[bits], ranges, q.variant("u8", bits), "minmax", proto)
    return models


def _int8_weights(path):
    """Every int8 weight initializer (the quantized conv / gemm weights) of a QDQ model."""
    proto = onnx.load(str(path))
    return [onnx.numpy_helper.to_array(i) for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8
            and len(i.dims) > 1]


def test_8_bit_weights_use_the_whole_int8_range_and_7_bit_ones_half(u8_models):
    eight, seven = _int8_weights(u8_models[8]), _int8_weights(u8_models[7])
    assert len(eight) == len(seven) > 10
    # per-channel symmetric: each output channel's largest weight is at the end of the range
    assert max(int(np.abs(w).max()) for w in eight) == 127
    assert max(int(np.abs(w).max()) for w in seven) <= 64
    assert all(np.abs(w).max() > 64 for w in eight)
    for bits, path in u8_models.items():
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["int8_weight_bits"] == str(bits) and props["precision"] == '"int8-qdq-u8"'


def test_the_runtime_warns_where_8_bit_weights_meet_a_cpu_without_vnni(u8_models, monkeypatch, caplog):
    from runtime.backends import base
    from runtime.backends.ort import OrtBackend

    monkeypatch.setattr(base, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    with caplog.at_level(logging.WARNING, logger="runtime"):
        OrtBackend(u8_models[8], device="cpu").close()
    assert "no VNNI or AMX" in caplog.text and "--u8-weights 7" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runtime"):
        OrtBackend(u8_models[7], device="cpu").close()  # 7-bit weights cannot saturate
        monkeypatch.setattr(base, "cpu_flags", lambda: {"avx2", "avx512_vnni"})
        OrtBackend(u8_models[8], device="cpu").close()  # VNNI adds in 32 bits
    assert "VNNI" not in caplog.text


def test_saturation_note_rule():
    meta = ModelMetadata.from_contract(int8_weight_bits=8)
    path = __import__("pathlib").Path("m.onnx")
    assert "m.onnx" in saturation_note(meta, path, {"avx2"})
    assert saturation_note(meta, path, {"avx2", "amx_int8"}) is None
    assert saturation_note(meta, path, {"avx2", "avx_vnni"}) is None
    assert saturation_note(meta, path, None) is None  # not x86: nothing to say
    assert saturation_note(ModelMetadata.from_contract(int8_weight_bits=7), path, {"avx2"}) is None
    assert saturation_note(ModelMetadata.from_contract(), path, {"avx2"}) is None  # a float model
