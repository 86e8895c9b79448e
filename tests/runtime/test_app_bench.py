"""Latency bookkeeping, memory readings and score smoothing used by the runtime loop."""
import json

import numpy as np
import pytest

from runtime.bench import STAGES, BenchmarkReport, LatencyRecorder, peak_rss_mib, rss_mib
from runtime.smoothing import ScoreSmoother, ema


def test_percentiles_per_stage_and_total_in_milliseconds():
    rec = LatencyRecorder(capacity=200)
    for i in range(1, 101):
        rec.add((0.001, 0.002, i / 1000, 0.0, 0.0))
    stats = rec.stats()
    assert set(stats) == set(STAGES) | {"total"}
    assert stats["read"]["p50"] == pytest.approx(1.0) and stats["pre"]["p95"] == pytest.approx(2.0)
    assert stats["infer"]["p50"] == pytest.approx(50.5) and stats["infer"]["p95"] == pytest.approx(95.05)
    assert stats["total"]["mean"] == pytest.approx(3.0 + 50.5)


def test_ring_keeps_the_latest_frames_without_growing():
    rec = LatencyRecorder(capacity=10)
    for i in range(25):
        rec.add((i / 1000,) + (0.0,) * 4)
    assert rec.count == 25 and len(rec.samples()) == 10
    assert sorted(rec.samples()[:, 0]) == pytest.approx(list(range(15, 25)))
    assert LatencyRecorder().stats() == {}
    with pytest.raises(ValueError, match="expected 5 stage times"):
        rec.add((0.1,))


def test_report_line_and_json(tmp_path):
    report = BenchmarkReport("openvino", "/m/model.int8.xml", "clip.mp4", frames=1000, warmup=20, seconds=8.0, fps=125.0,
                             latency_ms={"infer": {"p50": 6.1, "p95": 7.25, "mean": 6.3}},
                             rss_start_mib=200.0, rss_end_mib=200.5)
    line = report.line()
    assert line.startswith("benchmark: openvino model.int8.xml, 1000 frames in 8.00 s = 125.0 frames/s end to end")
    assert "infer 6.10/7.25" in line and "rss 200.0 -> 200.5 MiB (+0.5)" in line
    report.write_json(tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["fps"] == 125.0 and data["rss_growth_mib"] == pytest.approx(0.5)


def test_memory_readings_are_plausible():
    now, peak = rss_mib(), peak_rss_mib()
    assert 1 < now <= peak + 1


def test_ema_starts_at_the_first_frame_and_moves_by_alpha():
    smooth = ScoreSmoother(0.5)
    np.testing.assert_allclose(smooth(np.array([1.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(smooth(np.array([0.0, 1.0])), [0.5, 0.5])
    np.testing.assert_allclose(smooth(np.array([0.0, 1.0])), [0.25, 0.75])
    smooth.reset()
    np.testing.assert_allclose(smooth(np.array([0.2, 0.2])), [0.2, 0.2])
    np.testing.assert_allclose(ema(None, [0.3], 1.0), [0.3])
    with pytest.raises(ValueError, match="changed shape"):
        ema(np.zeros(2, np.float32), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\]"):
        ScoreSmoother(1.5)
