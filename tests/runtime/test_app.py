"""The runtime loop on a video made from generated scenes, with a numpy stand-in for a backend (same interface).

The real backends (ONNX Runtime / OpenVINO) and the CLI are exercised in test_app_cli.py.
"""
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.exitcodes import BAD_INPUT, OK, VERDICT
from dualpath.scenes import SceneConfig
from dualpath.scenes.dataset import render_range
from runtime.demo_video import write_scene_video
from runtime.app import RunConfig, run, select_labels
from runtime.backends import BackendError
from runtime.overlay import display_problem, overlay_size, render_overlay
from runtime.sources import Frame, FrameSource

N_SCENES, UPSCALE = 10, 4


@dataclass(frozen=True)
class FakeMetadata:
    class_names: tuple = contract.CLASS_NAMES
    image_size: int = contract.IMAGE_SIZE
    mean: tuple = contract.MEAN
    std: tuple = contract.STD
    input_name: str = contract.INPUT_NAME
    output_names: tuple = contract.OUTPUT_NAMES


class FakeBackend:
    """A fixed random linear classifier: sensitive to every input pixel, so any preprocessing slip shows."""

    name = "fake"

    def __init__(self):
        self.metadata = FakeMetadata()
        self.weights = np.random.default_rng(0).normal(size=(3 * 64 * 64, contract.NUM_CLASSES)).astype(np.float32)
        self.calls = 0
        self.closed = False

    def infer(self, feeds):
        x = feeds[contract.INPUT_NAME]
        assert x.dtype == np.float32 and x.shape[1:] == (3, 64, 64)
        self.calls += 1
        logits = x.reshape(len(x), -1) @ self.weights / 30.0
        return {"probs": 1 / (1 + np.exp(-logits)), "recon": np.tanh(x)}

    def close(self):
        self.closed = True


class ListSource(FrameSource):
    """Frames from a list; `lost=True` makes it end like a camera that stopped delivering."""

    def __init__(self, images, lost=False):
        self._images, self._lost = list(images), lost

    def read(self):
        if self._images:
            return Frame(self._images.pop(0))
        self.lost = self._lost
        self.end_reason = "stopped delivering frames" if self._lost else "end of images"
        return None


@pytest.fixture(scope="module")
def scenes():
    return render_range(SceneConfig(variants_per_class=1, backgrounds_per_kind=1), seed=7, start=0, stop=N_SCENES)


@pytest.fixture(scope="module")
def scene_video(scenes, tmp_path_factory):
    """The scenes as a 256x256 video, each shown for one frame; FFV1 is lossless, so decoding gives them back."""
    return write_scene_video(tmp_path_factory.mktemp("video") / "scenes.mkv", scenes["noisy"], size=64 * UPSCALE)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_on_a_scene_video_gives_the_probabilities_of_the_scenes_fed_directly(scenes, scene_video, tmp_path):
    backend = FakeBackend()
    config = RunConfig(model="fake.onnx", source=str(scene_video), headless=True, jsonl=str(tmp_path / "out.jsonl"))
    summary = run(config, backend=backend)
    assert (summary.frames, summary.exit_code, summary.end_reason) == (N_SCENES, OK, "source end of file")
    lines = _jsonl(tmp_path / "out.jsonl")
    direct = backend.infer({"image": contract.preprocess(scenes["noisy"])})["probs"]
    # JSON keeps 6 decimals, and a batch of 10 sums in another float32 order than 10 single frames: 1e-5.
    np.testing.assert_allclose([line["probs"] for line in lines], direct, atol=1e-5)
    assert [line["frame"] for line in lines] == list(range(N_SCENES))
    for line, probs in zip(lines, direct):
        expected = select_labels(probs, contract.CLASS_NAMES, 0.5)
        assert line["labels"] == [n for n, _ in expected]
        assert set(line["latency_ms"]) == {"read", "pre", "infer", "post"}
    assert not backend.closed  # the caller's backend stays open


def test_labels_are_the_classes_above_the_threshold_best_first_at_most_top():
    names = ("a", "b", "c", "d")
    scores = np.array([0.2, 0.9, 0.6, 0.6])
    assert select_labels(scores, names, 0.5) == [("b", pytest.approx(0.9)), ("c", pytest.approx(0.6)), ("d", pytest.approx(0.6))]
    assert [n for n, _ in select_labels(scores, names, 0.5, top=2)] == ["b", "c"]
    assert [n for n, _ in select_labels(scores, names, 0.0, top=4)] == ["b", "c", "d", "a"]
    assert select_labels(scores, names, 0.95) == []
    with pytest.raises(ValueError, match="4 scores for 3 class names"):
        select_labels(scores, names[:3])


def test_smoothing_averages_scores_across_frames(scene_video, tmp_path):
    config = RunConfig(model="m.onnx", source=str(scene_video), headless=True, smooth=0.25, threshold=0.0,
                       jsonl=str(tmp_path / "s.jsonl"))
    run(config, backend=FakeBackend())
    lines = _jsonl(tmp_path / "s.jsonl")
    probs = np.array([line["probs"] for line in lines])
    expected = probs[0]
    for line, p in zip(lines[1:], probs[1:]):
        expected = 0.25 * p + 0.75 * expected
        shown = dict(zip(line["labels"], line["scores"]))
        np.testing.assert_allclose([shown[n] for n in contract.CLASS_NAMES], expected, atol=2e-6)


def test_save_writes_one_overlay_frame_per_frame(scene_video, tmp_path):
    out = tmp_path / "overlay.avi"
    summary = run(RunConfig(model="m.onnx", source=str(scene_video), headless=True, save=str(out), max_frames=4),
                  backend=FakeBackend())
    assert summary.frames == 4 and "--max-frames 4" in summary.end_reason
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 4
    ok, frame = cap.read()
    assert ok and (frame.shape[1], frame.shape[0]) == overlay_size()


def test_loop_with_max_frames_runs_past_the_end_of_the_file(scene_video):
    backend = FakeBackend()
    summary = run(RunConfig(model="m", source=str(scene_video), headless=True, loop=True, max_frames=25),
                  backend=backend)
    assert summary.frames == backend.calls == 25


def test_unusable_frames_are_skipped_and_counted(caplog):
    good = np.zeros((48, 64, 3), np.uint8)
    frames = [good, np.zeros((5, 5), np.float64), np.zeros((48, 64, 4), np.uint8), np.zeros((0, 3), np.uint8)]
    summary = run(RunConfig(model="m", source="x", headless=True), backend=FakeBackend(), source=ListSource(frames))
    assert (summary.frames, summary.bad_frames, summary.exit_code) == (2, 2, OK)
    assert "dtype float64" in caplog.text and "2 unusable frames" in summary.line()


@pytest.mark.parametrize("limit", [3, 50])  # the source ends, or --max-bad-frames ends the run first
def test_a_source_of_only_unusable_frames_is_bad_input(limit):
    summary = run(RunConfig(model="m", source="x", headless=True, max_bad_frames=limit), backend=FakeBackend(),
                  source=ListSource([np.zeros((4, 4), np.int32)] * 3))
    assert summary.exit_code == BAD_INPUT and "no usable frame" in summary.end_reason
    assert summary.end_reason.count("dtype int32") == 1


def test_a_lost_live_source_is_a_failed_run_exit_code_1():
    frames = [np.zeros((48, 64, 3), np.uint8)] * 3
    summary = run(RunConfig(model="m", source="x", headless=True), backend=FakeBackend(), source=ListSource(frames, lost=True))
    assert (summary.frames, summary.exit_code) == (3, VERDICT)
    assert summary.line().startswith("summary: 3 frames") and "stopped delivering frames" in summary.line()


def test_a_live_source_lost_before_its_first_frame_is_bad_input():
    summary = run(RunConfig(model="m", source="x", headless=True), backend=FakeBackend(), source=ListSource([], lost=True))
    assert (summary.frames, summary.exit_code) == (0, BAD_INPUT)
    assert "no usable frame from the source (source stopped delivering frames)" in summary.end_reason


def test_unusable_frames_after_good_ones_end_a_failed_run():
    frames = [np.zeros((48, 64, 3), np.uint8)] * 2 + [np.zeros((4, 4), np.int32)] * 5
    summary = run(RunConfig(model="m", source="x", headless=True, max_bad_frames=5), backend=FakeBackend(),
                  source=ListSource(frames))
    assert (summary.frames, summary.exit_code) == (2, VERDICT) and "5 unusable frames in a row" in summary.end_reason


def test_inference_that_fails_midway_ends_a_failed_run():
    class FailingBackend(FakeBackend):
        def infer(self, feeds):
            if self.calls == 2:
                raise BackendError("TensorRT execution failed (see the TensorRT log above)")
            return super().infer(feeds)

    summary = run(RunConfig(model="m", source="x", headless=True), backend=FailingBackend(),
                  source=ListSource([np.zeros((48, 64, 3), np.uint8)] * 5))
    assert (summary.frames, summary.exit_code) == (2, VERDICT)
    assert summary.end_reason == "inference failed: TensorRT execution failed (see the TensorRT log above)"


def test_should_stop_ends_the_run_cleanly(scene_video):
    calls = iter([False, False, True])
    summary = run(RunConfig(model="m", source=str(scene_video), headless=True), backend=FakeBackend(),
                  should_stop=lambda: next(calls))
    assert (summary.frames, summary.end_reason, summary.exit_code) == (2, "interrupted", OK)


def test_benchmark_report_times_after_the_warmup(scene_video):
    summary = run(RunConfig(model="m.onnx", source=str(scene_video), benchmark=True, warmup=3, loop=True, max_frames=30),
                  backend=FakeBackend())
    report = summary.report
    assert (report.frames, report.warmup) == (27, 3) and report.fps > 0
    assert set(report.latency_ms) == {"read", "pre", "infer", "post", "out", "total"}
    assert report.latency_ms["total"]["p95"] >= report.latency_ms["total"]["p50"] > 0
    assert report.rss_start_mib > 0 and report.rss_end_mib > 0
    assert report.line().startswith("benchmark: fake m.onnx, 27 frames in ")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_frames": 0}, "--max-frames must be >= 1"),
        ({"threshold": 1.5}, r"--threshold is a probability in \[0, 1\]"),
        ({"top": 0}, "--top must be >= 1"),
        ({"smooth": 0.0}, r"--smooth is an EMA weight in \(0, 1\]"),
        ({"save": "out.gif"}, "--save needs a video file name ending in one of .mp4"),
        ({"benchmark": True, "max_frames": 10}, r"--max-frames \(10\) must exceed --warmup \(20\)"),
        ({"retries": -1}, "--retries and the backoff must be >= 0"),
    ],
)
def test_config_errors_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(model="m", source="s", **kwargs)


def test_overlay_has_one_size_for_frames_of_any_shape(scenes):
    rgb = scenes["noisy"][0]
    for frame in (np.zeros((720, 1280, 3), np.uint8), np.zeros((100, 30, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)):
        canvas = render_overlay(frame, rgb, rgb, [("ladle", 0.9), ("whisk", 0.7)], 120.0)
        assert (canvas.shape[1], canvas.shape[0]) == overlay_size() and canvas.dtype == np.uint8
    assert render_overlay(frame, rgb, None, [], None).shape == canvas.shape


def test_a_window_needs_a_gui_opencv_and_a_display():
    with_gui = "  GUI:                           GTK3\n"
    assert "--headless" in display_problem("  GUI:                           NONE\n", {"DISPLAY": ":0"}, "linux")
    assert "DISPLAY is not set" in display_problem(with_gui, {}, "linux")
    assert display_problem(with_gui, {"DISPLAY": ":0"}, "linux") is None
    assert display_problem(with_gui, {}, "darwin") is None


def test_window_is_refused_up_front_on_a_headless_opencv(scene_video):
    from runtime.overlay import DisplayError

    if display_problem(cv2.getBuildInformation(), {"DISPLAY": ":0"}, "linux") is None:
        pytest.skip("this OpenCV has a GUI")
    with pytest.raises(DisplayError, match="--headless"):
        run(RunConfig(model="m", source=str(scene_video)), backend=FakeBackend())


def test_demo_video_cli_and_its_checks(tmp_path, capsys):
    from runtime.demo_video import main

    assert main(["--out", str(tmp_path / "d" / "demo.avi"), "--n", "3", "--hold", "2", "--size", "128"]) == 0
    cap = cv2.VideoCapture(str(tmp_path / "d" / "demo.avi"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 6 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 128
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(ValueError, match="multiple of 64"):
        write_scene_video(tmp_path / "x.mkv", np.zeros((1, 64, 64, 3), np.uint8), size=100)
    with pytest.raises(ValueError, match="must end in one of .mkv"):
        write_scene_video(tmp_path / "x.gif", np.zeros((1, 64, 64, 3), np.uint8))
