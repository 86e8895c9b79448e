"""Throughput mode and several sources (runtime.pipeline) with the numpy stand-in backend of test_app.py: every frame
written exactly once, in its source's order, whatever order the requests finish in; a lost source ends only itself;
each source its own outputs; the exit codes of the latency loop."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from dualpath import contract
from dualpath.exitcodes import BAD_INPUT, OK, VERDICT
from runtime.app import RunConfig, check_outputs, indexed_path, run
from runtime.backends import BackendError
from runtime.backends.runner import ThreadRunner
from runtime.app import RunError

from test_app import FakeBackend, ListSource  # noqa: E402  (same folder)


class JitteryBackend(FakeBackend):
    """FakeBackend with a ThreadRunner of `requests` threads whose latency varies per frame, so requests finish out
    of order; records the batch sizes it was given."""

    def __init__(self, fail_at: int | None = None):
        super().__init__()
        self.batches, self.fail_at = [], fail_at

    def runner(self, requests=None, batch=1):
        def infer(x):
            self.batches.append(len(x))
            if self.fail_at is not None and len(self.batches) > self.fail_at:
                raise BackendError("TensorRT execution failed (see the TensorRT log above)")
            time.sleep(float(abs(x[0, 0, 5, 7])) % 0.003)
            return self.infer({contract.INPUT_NAME: x})

        return ThreadRunner([infer] * (requests or 4), batch, "jittery")


def _frames(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def _expected_probs(frames):
    from runtime.preprocess import Preprocessor

    pre = Preprocessor.from_metadata(FakeBackend().metadata)
    return FakeBackend().infer({"image": np.concatenate([pre(f)[1] for f in frames])})["probs"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("requests, batch", [(4, 1), (3, 4)])
def test_every_frame_once_in_order_per_source_whatever_order_requests_finish_in(tmp_path, requests, batch):
    frames = [_frames(37, 1), _frames(23, 2)]
    backend = JitteryBackend()
    config = RunConfig(model="m.onnx", source=["a", "b"], headless=True, mode="throughput", requests=requests,
                       batch=batch, jsonl=str(tmp_path / "out.jsonl"))
    summary = run(config, backend=backend, source=[ListSource(f) for f in frames])
    assert (summary.exit_code, summary.frames) == (OK, 60)
    for i, f in enumerate(frames):
        lines = _lines(tmp_path / f"out.{i}.jsonl")
        assert [line["frame"] for line in lines] == list(range(len(f)))
        assert {(line["source"], line["source_name"]) for line in lines} == {(i, "ab"[i])}
        np.testing.assert_allclose([line["probs"] for line in lines], _expected_probs(f), atol=1e-5)  # a batch sums in another order
    assert set(backend.batches) <= {batch} and len(backend.batches) >= 60 / batch  # short batches padded
    assert summary.report.requests == requests and summary.report.batch == batch


def test_two_sources_one_lost_midway_the_other_finishes_exit_1_each_its_own_jsonl(tmp_path):
    config = RunConfig(model="m.onnx", source=["cam", "clip"], headless=True, mode="throughput",
                       jsonl=str(tmp_path / "o.jsonl"))
    summary = run(config, backend=JitteryBackend(),
                  source=[ListSource(_frames(3, 1), lost=True), ListSource(_frames(30, 2))])
    assert (summary.exit_code, summary.frames) == (VERDICT, 33)
    assert "source 0 (cam): 3 frames, source stopped delivering frames" in summary.end_reason
    assert "source 1 (clip): 30 frames, source end of images" in summary.end_reason
    assert len(_lines(tmp_path / "o.0.jsonl")) == 3 and len(_lines(tmp_path / "o.1.jsonl")) == 30


def test_each_source_replaces_its_existing_output_only_when_it_ended_well(tmp_path):
    for i in (0, 1):
        (tmp_path / f"o.{i}.jsonl").write_text("old\n")
    config = RunConfig(model="m.onnx", source=["cam", "clip"], headless=True, jsonl=str(tmp_path / "o.jsonl"))
    summary = run(config, backend=FakeBackend(),
                  source=[ListSource(_frames(3, 1), lost=True), ListSource(_frames(5, 2))])
    assert summary.exit_code == VERDICT
    assert (tmp_path / "o.0.jsonl").read_text() == "old\n" and len(_lines(tmp_path / "o.0.partial.jsonl")) == 3
    assert len(_lines(tmp_path / "o.1.jsonl")) == 5  # the source that ended well: replaced


def test_exit_codes_when_sources_give_no_usable_frame():
    bad = [np.zeros((4, 4), np.int32)] * 3
    none = run(RunConfig(model="m", source=["a", "b"], headless=True), backend=FakeBackend(),
               source=[ListSource(bad), ListSource([], lost=True)])
    assert none.exit_code == BAD_INPUT and none.end_reason.count("no usable frame from the source") == 2
    one = run(RunConfig(model="m", source=["a", "b"], headless=True), backend=FakeBackend(),
              source=[ListSource(bad), ListSource(_frames(4, 1))])
    assert (one.exit_code, one.frames) == (VERDICT, 4)
    single = run(RunConfig(model="m", source="a", headless=True, mode="throughput"), backend=FakeBackend(),
                 source=ListSource(bad))
    assert single.exit_code == BAD_INPUT and "no usable frame from the source (source end of images" in single.end_reason


def test_inference_failing_midway_ends_a_failed_run():
    summary = run(RunConfig(model="m", source="a", headless=True, mode="throughput", requests=2),
                  backend=JitteryBackend(fail_at=5), source=ListSource(_frames(40, 1)))
    assert summary.exit_code == VERDICT and summary.frames <= 5
    assert summary.end_reason == "inference failed: TensorRT execution failed (see the TensorRT log above)"


def test_should_stop_and_max_frames_per_source():
    calls = iter([False] * 3 + [True] * 1000)
    stopped = run(RunConfig(model="m", source="a", headless=True, mode="throughput"), backend=JitteryBackend(),
                  source=ListSource(_frames(500, 1)), should_stop=lambda: next(calls))
    assert (stopped.exit_code, stopped.end_reason) == (OK, "interrupted") and stopped.frames < 500
    capped = run(RunConfig(model="m", source=["a", "b"], headless=True, max_frames=7), backend=FakeBackend(),
                 source=[ListSource(_frames(20, 1)), ListSource(_frames(20, 2))])
    assert (capped.exit_code, capped.frames) == (OK, 14) and capped.end_reason.count("--max-frames 7") == 2


def test_benchmark_reports_each_source_and_the_requests_in_flight():
    summary = run(RunConfig(model="m.onnx", source=["a", "b"], benchmark=True, warmup=4, mode="throughput",
                            requests=3), backend=JitteryBackend(),
                  source=[ListSource(_frames(30, 1)), ListSource(_frames(20, 2))])
    report = summary.report
    assert report.frames == 46 and report.requests == 3 and 1 <= report.mean_in_flight <= 3
    assert [s["frames"] for s in report.sources] == pytest.approx([28, 18], abs=4)
    assert sum(s["frames"] for s in report.sources) == 46
    line = report.line()
    assert "throughput mode: 3 requests in flight" in line and "source 1 b: " in line and "frame latency" in line


def test_outputs_named_once_get_the_source_index_and_are_checked_against_every_source(tmp_path):
    assert indexed_path("run/out.jsonl", 1, 2) == "run/out.1.jsonl" and indexed_path("o.mp4", 0, 1) == "o.mp4"
    video = tmp_path / "clip.avi"
    video.write_bytes(b"x")
    (tmp_path / "other.avi").write_bytes(b"x")
    # out.1.avi is the second source itself
    (tmp_path / "out.1.avi").write_bytes(b"x")
    with pytest.raises(RunError, match=r"--save \(source 1\) .*out.1.avi is also --source"):
        check_outputs(RunConfig(model="m.onnx", source=[str(video), str(tmp_path / "out.1.avi")], headless=True,
                                save=str(tmp_path / "out.avi")))


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "fast"}, "--mode is one of latency, throughput"),
    ({"requests": 4}, "--requests and --batch are for --mode throughput"),
    ({"mode": "throughput", "batch": 0}, "--batch must be >= 1"),
    ({"mode": "throughput", "requests": 0}, "--requests must be >= 1"),
    ({"source": []}, "--source is needed"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**{"model": "m", "source": "s"} | kwargs)
