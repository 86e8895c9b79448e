"""export.layer_error: per-tensor SQNR of the tiny s8 model against FP32, worst first, as JSON and a plot."""
from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")
pytest.importorskip("torch")

from export.layer_error import LABEL_CHARS, layer_error_report, short_name  # noqa: E402


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from tiny_qdq import tiny_qdq

    return tiny_qdq(tmp_path_factory.mktemp("tiny_qdq"))


def test_the_report_lists_quantized_tensors_worst_first(real, tmp_path):
    from tiny_qdq import calibration_batches

    batches = list(calibration_batches(12, 8))  # 8 + 4 scenes
    report = layer_error_report(real["fp32"], real["s8"], batches, tmp_path / "drift")
    saved = json.loads((tmp_path / "drift" / "layer_error.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert report["scenes"] == 12 and report["batches"] == 2
    rows = report["tensors"]
    assert len(rows) > 20  # the tiny s8 model quantizes the inputs of its 30 INT8 convolutions
    sqnr = [r["sqnr_db"] for r in rows if r["sqnr_db"] is not None]
    assert sqnr and all(math.isfinite(s) for s in sqnr) and sqnr == sorted(sqnr)
    assert all(r["qdq_sqnr_db"] is None or math.isfinite(r["qdq_sqnr_db"]) for r in rows)
    assert any("/Relu_output_0" in r["tensor"] for r in rows)  # a convolution's input, after its BN-ReLU
    assert all(len(r["label"]) <= LABEL_CHARS for r in rows)
    png = tmp_path / "drift" / "layer_error.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_labels_shorten_module_paths():
    assert short_name("/model/encoder/denseblock2/denselayer1/conv1/Conv_output_0") == "enc/db2/dl1/conv1/Conv"
    assert short_name("/model/decoder/blocks.1/conv/conv.1/conv.1.0/Conv_output_0") == "dec/b1/conv.1.0/Conv"
    assert short_name("/model/classifier_backbone/features/norm5/BatchNormalization_output_0") == "cls_bb/feat/norm5/BN"
    assert short_name("image") == "image"
    long = short_name("/model/" + "/".join(f"layer{i}" for i in range(20)) + "/Conv_output_0")
    assert len(long) == LABEL_CHARS and long.startswith("...") and long.endswith("layer19/Conv")


def test_no_batches_is_refused(real, tmp_path):
    with pytest.raises(ValueError, match="at least one calibration batch"):
        layer_error_report(real["fp32"], real["s8"], [], tmp_path)
