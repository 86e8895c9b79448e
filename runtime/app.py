"""The runtime loop: source -> preprocess -> backend -> scores (smoothed) -> labels -> window / video / JSON lines.

    summary = run(RunConfig(model="model_int8.xml", source="clip.mp4", headless=True))

numpy + OpenCV + one backend from runtime.backends; never torch. Every stage is timed per frame (runtime.bench).
The loop ends when the source ends or is lost, at --max-frames, on q / Esc in the window, or when `should_stop()`
says so (the CLI wires SIGINT / SIGTERM to it); every ending returns a RunSummary rather than raising, its exit code
one of dualpath.exitcodes: OK, VERDICT for a run that failed midway (a live source lost, a video that stopped
decoding, inference that failed), BAD_INPUT for a source that gave no usable frame at all.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from dualpath import contract, exitcodes
from runtime.backends.base import BackendError
from runtime.bench import STAGES, BenchmarkReport, LatencyRecorder, peak_rss_mib, rss_mib
from runtime.overlay import Window, overlay_size, render_overlay
from runtime.preprocess import FrameError, Preprocessor, to_bgr
from runtime.smoothing import ScoreSmoother
from runtime.sources import OPEN_TIMEOUT_S, FrameSource, SourceError, open_source, source_files

log = logging.getLogger("runtime")

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}
MAX_BAD_FRAMES_IN_A_ROW = 50  # default --max-bad-frames: then the source is not giving usable frames at all


class RunError(RuntimeError):
    """The run cannot start or go on as asked (an output that cannot be written); the message says what to change."""


@dataclass
class RunConfig:
    model: str
    source: str
    backend: str = "auto"  # "auto" | "onnxruntime" | "openvino" | "tensorrt" (runtime.backends.load_backend)
    headless: bool = False  # no window (servers, SSH sessions, benchmarks)
    jsonl: str | None = None  # one JSON line per frame: time, labels, scores, probabilities, latency
    save: str | None = None  # write the overlay to this video file
    max_frames: int | None = None  # stop after this many frames (None: until the source ends)
    threshold: float = 0.5  # labels are the classes scoring at or above this...
    top: int | None = None  # ...at most this many, best first (None: all above the threshold)
    smooth: float | None = None  # EMA alpha over frames, in (0, 1]; None: raw scores
    retries: int = 3  # reopen attempts of a live source that stopped delivering frames
    backoff_s: float = 0.25  # pause before the first reopen; doubles with each attempt
    loop: bool = False  # start video files / images again at their end (benchmarks on a short clip)
    benchmark: bool = False  # print the benchmark line (latency per stage, frames/s, memory)
    benchmark_json: str | None = None  # also write the benchmark report as JSON here
    warmup: int | None = None  # frames run before timing starts; None: 20 with --benchmark, else 0
    threads: int | None = None  # CPU inference threads (ONNX Runtime / OpenVINO); None: the backend's choice
    max_bad_frames: int = MAX_BAD_FRAMES_IN_A_ROW  # undecodable or unusable frames in a row that end the run
    timeout: float = OPEN_TIMEOUT_S  # seconds a live source may take to open / give a frame (each (re)open)

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {self.max_frames}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold is a probability in [0, 1], got {self.threshold}")
        if self.top is not None and self.top < 1:
            raise ValueError(f"--top must be >= 1 label, got {self.top}")
        if self.smooth is not None and not 0.0 < self.smooth <= 1.0:
            raise ValueError(f"--smooth is an EMA weight in (0, 1] (1 = off, 0.3 = strong), got {self.smooth}")
        if self.retries < 0 or self.backoff_s < 0:
            raise ValueError(f"--retries and the backoff must be >= 0, got {self.retries} and {self.backoff_s}")
        if self.warmup is None:
            self.warmup = 20 if self.benchmark else 0
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {self.threads}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0 frames, got {self.warmup}")
        if self.max_bad_frames < 1:
            raise ValueError(f"--max-bad-frames must be >= 1, got {self.max_bad_frames}")
        if not 0 < self.timeout < float("inf"):  # NaN fails too
            raise ValueError(f"--timeout is seconds > 0, got {self.timeout}")
        if self.max_frames is not None and self.benchmark and self.warmup >= self.max_frames:
            raise ValueError(f"--max-frames ({self.max_frames}) must exceed --warmup ({self.warmup}) to time anything")
        if self.save and Path(self.save).suffix.lower() not in VIDEO_CODECS:
            raise ValueError(f"--save needs a video file name ending in one of {', '.join(VIDEO_CODECS)}, got {self.save}")
        if self.benchmark_json and not self.benchmark:
            self.benchmark = True  # asking for the JSON report is asking for the benchmark


def select_labels(
    scores: np.ndarray, class_names: tuple[str, ...], threshold: float = 0.5, top: int | None = None
) -> list[tuple[str, float]]:
    """(name, score) of the classes scoring >= threshold, best first (ties by class index), at most `top`."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    if len(scores) != len(class_names):
        raise ValueError(f"{len(scores)} scores for {len(class_names)} class names; the model metadata is inconsistent")
    order = np.argsort(-scores, kind="stable")
    picked = [(class_names[i], float(scores[i])) for i in order if scores[i] >= threshold]
    return picked if top is None else picked[:top]


def open_backend(config: RunConfig):
    from runtime.backends import load_backend  # lazily: --help and config errors need no backend

    from runtime.backends.trt_engine import ENGINE_SUFFIXES

    path = Path(config.model)
    options = {}
    if path.suffix.lower() in ENGINE_SUFFIXES:  # the backend checks that the engine fits this TensorRT and GPU
        if config.threads:
            log.warning("--threads is for CPU backends; a TensorRT engine runs on the GPU")
    elif config.threads:
        options["threads"] = config.threads
    return load_backend(path, backend=config.backend, **options)


# ------------------------------------------------------------------------------------------------ outputs


OUTPUT_FLAGS = {"jsonl": "--jsonl", "save": "--save", "benchmark_json": "--benchmark-json"}


def check_outputs(config: RunConfig) -> None:
    """Before anything is opened: every output can be written, and none is a file the run reads (the model, its
    weights or sidecar, the source video / image / any image of the source folder) or another output. RunError."""
    from dualpath.files import check_writable, refuse_output_over_input
    from runtime.backends import model_files

    outputs = {flag: getattr(config, name) for name, flag in OUTPUT_FLAGS.items() if getattr(config, name)}
    if not outputs:
        return
    try:
        for flag, path in outputs.items():
            if not (Path(path).is_char_device() or Path(path).is_fifo()):  # /dev/full, a pipe: written as they are
                check_writable(path, "file", flag)
        try:
            read = source_files(config.source)
        except (SourceError, OSError):  # the source's own error comes when it is opened
            read = []
        refuse_output_over_input(outputs, {"--model": model_files(config.model), "--source": read}, error=RunError)
    except OSError as e:
        raise RunError(str(e)) from None


class OutputFile:
    """Where one output of a run is written, so that a run that fails leaves an existing output as it was.

    The file is opened at the first usable frame, never before (a run that gets no usable frame creates nothing).
    A path that holds no file yet is then written directly: a long live run's --jsonl can be read (tail -f) while it
    runs, as before. A path that holds a regular file is written under a temporary name beside it (.NAME.tmpPID.EXT,
    named on stderr at the start so it can be followed) and renamed over the old file only when the run ends well
    (exit 0: the source ended, --max-frames, q / Esc, Ctrl-C / SIGTERM); when it fails (exit 1 or 2) the old file
    stays as it was and what this run wrote is kept beside it as NAME.partial.EXT (or removed when nothing was
    written). We chose this over always writing a temporary: a new file then keeps the streaming it had, and the
    only cost, for a file being replaced, is following the temporary instead. Devices and FIFOs (/dev/stdout, a pipe)
    are written directly."""

    def __init__(self, path: str | Path, flag: str) -> None:
        self.path, self.flag = Path(path), flag
        self.replaces = self.path.is_file()
        self.writing = self.path
        if self.replaces:
            from dualpath.files import _remove_stale_temporaries  # those of killed runs

            _remove_stale_temporaries(self.path)
            self.writing = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        self.opened = False

    @property
    def partial(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}")

    def finish(self, ok: bool) -> str:
        """Put the output in place (ok) or leave the old one (not ok); returns a note for the summary ("" if none)."""
        if not self.replaces or not self.opened:
            return ""
        if ok:
            os.replace(self.writing, self.path)
            return ""
        if self.writing.exists() and self.writing.stat().st_size > 0:
            os.replace(self.writing, self.partial)
            return f"{self.flag} {self.path} was left as it was (this run's output: {self.partial})"
        self.writing.unlink(missing_ok=True)
        return f"{self.flag} {self.path} was left as it was"

    def discard(self) -> None:
        """After an exception: the temporary goes, the old file stays."""
        if self.replaces:
            self.writing.unlink(missing_ok=True)


class JsonlSink:
    def __init__(self, path: str) -> None:
        self.target = OutputFile(path, "--jsonl")
        self._file = None

    def write(self, record: dict) -> None:
        if self._file is None:
            try:
                self._file = open(self.target.writing, "w", buffering=1 << 16)
            except OSError as e:
                raise RunError(f"cannot write --jsonl {self.target.path}: {e.strerror}") from None
            self.target.opened = True
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as e:  # a full disk, mid-run
            raise self._error(e) from None

    def close(self) -> None:
        if self._file is None:
            return
        try:
            self._file.close()
        except OSError as e:  # the last buffer, on a full disk
            raise self._error(e) from None

    def _error(self, e: OSError) -> RunError:
        return RunError(f"cannot write --jsonl {self.target.path}: {e.strerror}; free space or write it elsewhere")


class VideoSink:
    """The overlay video, opened at the first frame written (see OutputFile)."""

    def __init__(self, path: str, fps: float | None) -> None:
        self.target = OutputFile(path, "--save")
        self._fps = fps or 30.0
        self._codec = VIDEO_CODECS[Path(path).suffix.lower()]
        self._writer = None

    def write(self, canvas: np.ndarray) -> None:
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.target.writing), cv2.VideoWriter_fourcc(*self._codec), self._fps,
                                           overlay_size())
            if not self._writer.isOpened():
                raise RunError(f"cannot write the video {self.target.path} with codec {self._codec}: check the folder "
                               "exists and is writable")
            self.target.opened = True
        self._writer.write(canvas)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


# ------------------------------------------------------------------------------------------------ the loop


@dataclass
class RunSummary:
    frames: int  # frames run through the model
    bad_frames: int  # frames the source delivered that could not be used (wrong shape / dtype)
    end_reason: str
    exit_code: int
    report: BenchmarkReport
    skipped_files: list[str] = field(default_factory=list)  # images in a folder that did not decode
    undecodable_frames: int = 0  # video frames that did not decode, skipped

    def line(self) -> str:
        r = self.report
        text = f"summary: {self.frames} frames"
        if self.bad_frames or self.skipped_files or self.undecodable_frames:
            text += (f" ({self.undecodable_frames} undecodable and {self.bad_frames} unusable frames, "
                     f"{len(self.skipped_files)} unreadable images skipped)")
        text += f", {r.fps:.1f} frames/s"
        if r.latency_ms:
            total, infer = r.latency_ms["total"], r.latency_ms["infer"]
            text += (f", latency ms p50/p95 {total['p50']:.2f}/{total['p95']:.2f} "
                     f"(inference {infer['p50']:.2f}/{infer['p95']:.2f})")
        return f"{text}; {self.end_reason}"


def _stage_ms(t: list[float]) -> dict[str, float]:
    return {s: round((t[i + 1] - t[i]) * 1000.0, 3) for i, s in enumerate(STAGES[:-1])}


class _Loop:
    """State of one run: what to do with each frame and the counters the summary reports."""

    def __init__(self, config: RunConfig, backend, source: FrameSource, window: Window | None) -> None:
        meta = backend.metadata
        self.config, self.backend, self.source, self.window = config, backend, source, window
        self.pre = Preprocessor.from_metadata(meta)
        self.class_names = tuple(meta.class_names)
        self.input_name = getattr(meta, "input_name", contract.INPUT_NAME)
        self.smoother = ScoreSmoother(config.smooth) if config.smooth is not None else None
        self.jsonl = JsonlSink(config.jsonl) if config.jsonl else None
        self.video = VideoSink(config.save, source.fps) if config.save else None
        self.draw = window is not None or self.video is not None
        self.fps_ema: float | None = None

    def outputs(self, index: int, frame_name: str, bgr, rgb, out, labels, t: list[float], skipped: int = 0) -> bool:
        """Write / show one frame's results; False when the user closed the window. `skipped`: source frames skipped
        so far (undecodable or unusable), in every JSON line."""
        if self.jsonl:
            self.jsonl.write({
                "frame": index, "time": round(time.time(), 6), **({"name": frame_name} if frame_name else {}),
                "skipped": skipped,
                "labels": [n for n, _ in labels], "scores": [round(s, 6) for _, s in labels],
                "probs": [round(float(p), 6) for p in np.asarray(out[contract.OUTPUT_PROBS])[0]],
                "latency_ms": _stage_ms(t),
            })
        if not self.draw:
            return True
        recon = out.get(contract.OUTPUT_RECON)
        recon_rgb = contract.recon_to_uint8(recon)[0] if recon is not None else None
        canvas = render_overlay(bgr, rgb, recon_rgb, labels, self.fps_ema)
        if self.video:
            self.video.write(canvas)
        return self.window.show(canvas) if self.window else True

    def close(self, ok: bool | None) -> list[str]:
        """Closes every sink, then puts the files in place (ok: the run ended well), leaves the old ones (ok False:
        the run failed) or only removes the temporaries (None: an exception is on its way). Returns notes for the
        summary; raises the first RunError (a JSON lines file whose last buffer did not fit)."""
        error = None
        for sink in (self.jsonl, self.video, self.window):
            try:
                if sink is not None:
                    sink.close()
            except RunError as e:
                error = error or e
        notes = []
        for sink in (self.jsonl, self.video):
            if sink is None:
                continue
            try:
                if ok is None or error is not None:
                    sink.target.discard()
                else:
                    notes.append(sink.target.finish(ok))
            except OSError as e:
                error = error or RunError(f"cannot put {sink.target.flag} {sink.target.path} in place: {e.strerror}")
        if error is not None:
            raise error
        return [n for n in notes if n]

    def announce(self) -> None:
        for sink in (self.jsonl, self.video):
            if sink is not None and sink.target.replaces:
                log.warning("%s %s exists: this run writes %s, which replaces it when the run ends well",
                            sink.target.flag, sink.target.path, sink.target.writing.name)


def run(
    config: RunConfig,
    *,
    backend=None,
    source: FrameSource | None = None,
    window: Window | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.perf_counter,
) -> RunSummary:
    """Run the loop. What is passed in (backend, source, window) is the caller's to close; what run opens it closes.
    Raises RunError / SourceError / BackendError / DisplayError before the first frame (the model, source or an output
    cannot be used), and RunError when an output cannot be written later (a full disk)."""
    owned = []
    check_outputs(config)  # found out before the run, not after it
    try:
        if backend is None:
            backend = open_backend(config)
            owned.append(backend)
        if source is None:
            source = open_source(config.source, loop=config.loop, retries=config.retries, backoff_s=config.backoff_s,
                                 max_failures=config.max_bad_frames, timeout_s=config.timeout)
            owned.append(source)
        if window is None and not config.headless and not config.benchmark:
            window = Window(f"dualpath - {Path(config.model).name}")
            owned.append(window)
        loop = _Loop(config, backend, source, window)
        loop.announce()
        try:
            summary = _run_loop(loop, should_stop, clock)
        except BaseException:
            try:
                loop.close(None)
            except RunError:
                pass  # the exception on its way says more
            raise
        notes = loop.close(summary.exit_code == exitcodes.OK)
        if notes:
            summary.end_reason += "; " + "; ".join(notes)
        return summary
    finally:
        for thing in owned:
            thing.close()


def _run_loop(loop: _Loop, should_stop: Callable[[], bool], clock: Callable[[], float]) -> RunSummary:
    config, source = loop.config, loop.source
    capacity = max(1, (config.max_frames or 0) - config.warmup) if config.max_frames else None
    recorder = LatencyRecorder(capacity) if capacity else LatencyRecorder()
    frames = bad = bad_in_a_row = 0
    end_reason, exit_code = "", exitcodes.OK
    source_gave_up = False  # the source ended the run (not --max-frames, q or a signal)
    t_start = clock() if config.warmup == 0 else None
    rss_start = rss_mib() if config.warmup == 0 else None
    last_error = ""
    try:
        while True:
            if config.max_frames is not None and frames >= config.max_frames:
                end_reason = f"stopped after --max-frames {config.max_frames}"
                break
            if should_stop():
                end_reason = "interrupted"
                break
            t = [clock()]
            frame = source.read()
            if frame is None:
                end_reason = f"source {source.end_reason}"
                broken = getattr(source, "broken", False)  # a file that stopped decoding before its end
                exit_code = exitcodes.VERDICT if source.lost or broken else exitcodes.OK  # a failed run, or done
                source_gave_up = True
                break
            t.append(clock())
            try:
                bgr = to_bgr(frame.image)
                rgb, x = loop.pre(bgr)
            except FrameError as e:
                bad, bad_in_a_row, last_error = bad + 1, bad_in_a_row + 1, str(e)
                if bad <= 3:
                    log.warning("unusable frame %s: %s", frame.name or frames + bad, e)
                if bad_in_a_row >= config.max_bad_frames:
                    end_reason, exit_code = f"{bad_in_a_row} unusable frames in a row (last: {e})", exitcodes.VERDICT
                    source_gave_up = True
                    break
                continue
            bad_in_a_row = 0
            t.append(clock())
            try:
                out = loop.backend.infer({loop.input_name: x})
            except BackendError as e:  # e.g. a TensorRT execution that failed mid-run
                end_reason, exit_code = f"inference failed: {e}", exitcodes.VERDICT
                break
            t.append(clock())
            probs = np.asarray(out[contract.OUTPUT_PROBS], np.float32)[0]
            scores = loop.smoother(probs) if loop.smoother else probs
            labels = select_labels(scores, loop.class_names, config.threshold, config.top)
            t.append(clock())
            keep_going = loop.outputs(frames, frame.name, bgr, rgb, out, labels, t, _skipped(source, bad))
            t.append(clock())
            frames += 1
            if frames > config.warmup:
                recorder.add(tuple(t[i + 1] - t[i] for i in range(len(STAGES))))
            elif frames == config.warmup:  # timing starts now
                t_start, rss_start = clock(), rss_mib()
            loop.fps_ema = _update_fps(loop.fps_ema, t[-1] - t[0])
            if not keep_going:
                end_reason = "window closed"
                break
    except KeyboardInterrupt:  # run() without the CLI's signal handlers
        end_reason = "interrupted"
    if frames == 0 and source_gave_up:  # bad input, not a run that failed midway
        detail = end_reason + (f"; {last_error}" if last_error and last_error not in end_reason else "")
        end_reason, exit_code = f"no usable frame from the source ({detail})", exitcodes.BAD_INPUT
    seconds = clock() - t_start if t_start is not None else 0.0
    timed = recorder.count
    report = BenchmarkReport(
        backend=getattr(loop.backend, "name", "?"), model=config.model, source=config.source,
        frames=timed, warmup=min(config.warmup, frames), seconds=seconds,
        fps=timed / seconds if seconds > 0 else 0.0, latency_ms=recorder.stats(),
        rss_start_mib=rss_start, rss_end_mib=rss_mib(), peak_rss_mib=peak_rss_mib(),
    )
    skipped = list(getattr(source, "skipped", []))
    return RunSummary(frames, bad, end_reason, exit_code, report, skipped, getattr(source, "undecodable", 0))


def _skipped(source: FrameSource, unusable: int) -> int:
    """Source frames and images skipped so far: undecodable, unreadable or unusable."""
    return unusable + getattr(source, "undecodable", 0) + len(getattr(source, "skipped", ()))


def _update_fps(previous: float | None, frame_seconds: float) -> float | None:
    if frame_seconds <= 0:
        return previous
    fps = 1.0 / frame_seconds
    return fps if previous is None else 0.9 * previous + 0.1 * fps  # steady readout, follows changes within ~10 frames
