"""The runtime loop: source -> preprocess -> backend -> scores (smoothed) -> labels -> window / video / JSON lines.

    summary = run(RunConfig(model="model_int8.xml", source="clip.mp4", headless=True))
    summary = run(RunConfig(model="model_int8.xml", source=["a.mp4", "rtsp://cam"], mode="throughput"))

This module is the latency mode for one source: one frame at a time, read -> infer -> outputs. Throughput mode and
several sources (requests in flight, a reader thread per source) are runtime.pipeline, which run() hands them to.

numpy + OpenCV + one backend from runtime.backends; never torch. Every stage is timed per frame (runtime.bench).
The loop ends when the source ends or is lost, at --max-frames, on q / Esc in the window, or when `should_stop()`
says so (the CLI wires SIGINT / SIGTERM to it); every ending returns a RunSummary rather than raising, its exit code
one of dualpath.exitcodes: OK, VERDICT for a run that failed midway (a live source lost, a video that stopped
decoding, inference that failed), BAD_INPUT for a source that gave no usable frame at all.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dualpath import contract, exitcodes
from runtime.backends.base import BackendError
from runtime.bench import STAGES, BenchmarkReport, LatencyRecorder, peak_rss_mib, rss_mib
from runtime.config import MODES, RunConfig, RunError, indexed_path, open_backend
from runtime.outputs import (RunSummary, SourceOutputs, check_outputs, select_labels, skipped_so_far,
                             update_fps)
from runtime.overlay import Window
from runtime.preprocess import FrameError, to_bgr
from runtime.sources import FrameSource, open_source

log = logging.getLogger("runtime")

# What `from runtime.app import ...` has always given (the CLI, scripts, tests).
__all__ = ["MODES", "RunConfig", "RunError", "RunSummary", "check_outputs", "indexed_path", "open_backend", "run",
           "select_labels"]


def run(
    config: RunConfig,
    *,
    backend=None,
    source: FrameSource | list[FrameSource] | None = None,
    window: Window | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.perf_counter,
) -> RunSummary:
    """Run the loop (runtime.pipeline's in throughput mode or for several sources: then `source` may be a list, one
    FrameSource per config source). What is passed in (backend, source, window) is the caller's to close; what run
    opens it closes.
    Raises RunError / SourceError / BackendError / DisplayError before the first frame (the model, source or an output
    cannot be used), and RunError when an output cannot be written later (a full disk)."""
    check_outputs(config)  # found out before the run, not after it
    if config.pipelined:
        from runtime.pipeline import run_pipeline

        sources = source if isinstance(source, (list, tuple)) else None if source is None else [source]
        return run_pipeline(config, backend=backend, sources=sources, window=window, should_stop=should_stop,
                            clock=clock)
    owned = []
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
        loop = SourceOutputs(config, backend, source, window)
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


def _run_loop(loop: SourceOutputs, should_stop: Callable[[], bool], clock: Callable[[], float]) -> RunSummary:
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
            keep_going = loop.outputs(frames, frame.name, bgr, rgb, out, labels, t, skipped_so_far(source, bad))
            t.append(clock())
            frames += 1
            if frames > config.warmup:
                recorder.add(tuple(t[i + 1] - t[i] for i in range(len(STAGES))))
            elif frames == config.warmup:  # timing starts now
                t_start, rss_start = clock(), rss_mib()
            loop.fps_ema = update_fps(loop.fps_ema, t[-1] - t[0])
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
