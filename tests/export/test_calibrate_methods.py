"""export.quantize_onnx.calibrate with each method on the tiny model, the last batch partial (entropy and
percentile used to stop there: ONNX Runtime's HistogramCalibrater np.asarray'd batches of different sizes)."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from export import quantize_onnx as q  # noqa: E402


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    from tiny_qdq import cached_fp32

    return cached_fp32(tmp_path_factory.mktemp("tiny_fp32"))


def _ranges(path):
    from onnxruntime.quantization.calibrate import load_tensors_data

    return {k: np.ravel(v.range_value).astype(float) for k, v in load_tensors_data(path).data.items()}


@pytest.mark.parametrize("method", q.CALIB_METHODS)
def test_each_method_calibrates_batches_of_different_sizes(fp32, tmp_path, method, capsys):
    from tiny_qdq import calibration_batches

    batches = calibration_batches(20, 8)  # 8, 8, 4
    assert [len(b["image"]) for b in batches] == [8, 8, 4]
    raw, shared = tmp_path / "ranges.json", tmp_path / "shared.json"
    q.calibrate(fp32, batches, method, raw, shared)
    ranges = _ranges(raw)
    assert len(ranges) > 50 and all(np.isfinite(v).all() for v in ranges.values())
    lo_hi = [(float(np.min(v)), float(np.max(v))) for v in ranges.values()]
    assert all(lo <= hi for lo, hi in lo_hi) and any(hi > lo for lo, hi in lo_hi)
    proto = onnx.load(str(fp32))
    group = max(q.concat_groups(proto, set(q.float_nodes(proto, expect_cbam=False))), key=len)  # one range
    widened = {tuple(_ranges(shared)[t]) for t in group if t in ranges}
    assert len(widened) == 1
    assert "Collecting tensor data" not in capsys.readouterr().out  # ORT's per-batch prints stay off the log
