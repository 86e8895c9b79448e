"""Throughput mode and several sources: requests in flight, a reader thread per source, results in frame order.

    per source:   reader thread: read -> to_bgr -> preprocess --(events)--+
                                                                          v
    main thread:  ready frames -> batch of --batch frames (across sources) -> runner.start (at most --requests in
                  flight) ... done (from the backend's thread) --(events)--> per-source reorder buffer -> in frame
                  order: scores (smoothed) -> labels -> that source's JSON lines / overlay video / window

One queue of events (a frame read, a source ended, a request done) wakes the main thread; each reader may hold at most
`2 x requests x batch + 2` frames between reading and delivery (a semaphore), so a fast file never runs ahead of
inference. A source that ends or is lost ends only itself; the run ends when every source has ended, at q / Esc in a
window, on should_stop() (Ctrl-C / SIGTERM) or when inference fails. Exit codes as the latency loop's (runtime.app):
per source OK, VERDICT (lost, stopped decoding, unusable frames in a row) or BAD_INPUT (no usable frame); the run is
BAD_INPUT when no source gave a usable frame, VERDICT when any source failed or inference failed, else OK. Each
source's outputs are put in place or left as they were by that source's own outcome (runtime.outputs.OutputFile).
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dualpath import contract, exitcodes
from runtime.config import RunConfig, RunError, indexed_path, open_backend
from runtime.backends.base import BackendError
from runtime.backends.runner import runner_for
from runtime.bench import DEFAULT_CAPACITY, BenchmarkReport, LatencyRecorder, peak_rss_mib, rss_mib
from runtime.outputs import RunSummary, SourceOutputs, select_labels, skipped_so_far, update_fps
from runtime.overlay import Window
from runtime.preprocess import FrameError, Preprocessor, to_bgr
from runtime.sources import FrameSource, open_source

log = logging.getLogger("runtime")

JOIN_S = 2.0  # how long the end of a run waits for a reader stuck in a live source's read


@dataclass
class _Frame:
    seq: int  # the source's usable frame number: the delivery order
    name: str
    bgr: np.ndarray | None  # kept only where an overlay is drawn
    rgb: np.ndarray
    x: np.ndarray  # (1, 3, size, size)
    t: tuple[float, float, float]  # read start, read end, preprocessing end
    skipped: int  # source frames skipped so far (for the JSON lines)


@dataclass
class _End:
    reason: str
    exit_code: int
    bad: int = 0
    last_error: str = ""
    gave_up: bool = True  # the source ended the run of frames itself (not --max-frames or a stop)


class _Reader(threading.Thread):
    """Reads and preprocesses one source's frames into `events` until it ends, --max-frames, or `stop`."""

    def __init__(self, index: int, source: FrameSource, pre: Preprocessor, config: RunConfig, events, stop,
                 slots: threading.Semaphore, keep_bgr: bool, clock: Callable[[], float]) -> None:
        super().__init__(name=f"reader-{index}", daemon=True)
        self.index, self.source, self.pre, self.config = index, source, pre, config
        self.events, self.stop, self.slots, self.keep_bgr, self.clock = events, stop, slots, keep_bgr, clock

    def run(self) -> None:
        try:
            end = self._read_all()
        except Exception as e:  # noqa: BLE001 - a source failing in a way it does not report: it ends, the run goes on
            end = _End(f"source failed: {type(e).__name__}: {e}", exitcodes.VERDICT)
        self.events.put(("end", self.index, end))

    def _acquire(self) -> bool:
        while not self.slots.acquire(timeout=0.1):
            if self.stop.is_set():
                return False
        return True

    def _read_all(self) -> _End:
        config, source, clock = self.config, self.source, self.clock
        frames = bad = bad_in_a_row = 0
        last_error = ""
        while True:
            if config.max_frames is not None and frames >= config.max_frames:
                return _End(f"stopped after --max-frames {config.max_frames}", exitcodes.OK, bad, gave_up=False)
            if self.stop.is_set() or not self._acquire():
                return _End("stopped", exitcodes.OK, bad, gave_up=False)
            t0 = clock()
            frame = source.read()
            if frame is None:
                self.slots.release()
                broken = getattr(source, "broken", False)
                code = exitcodes.VERDICT if source.lost or broken else exitcodes.OK
                return _End(f"source {source.end_reason}", code, bad, last_error)
            t1 = clock()
            try:
                bgr = to_bgr(frame.image)
                rgb, x = self.pre(bgr)
            except FrameError as e:
                self.slots.release()
                bad, bad_in_a_row, last_error = bad + 1, bad_in_a_row + 1, str(e)
                if bad <= 3:
                    log.warning("unusable frame %s: %s", frame.name or frames + bad, e)
                if bad_in_a_row >= config.max_bad_frames:
                    return _End(f"{bad_in_a_row} unusable frames in a row (last: {e})", exitcodes.VERDICT, bad, str(e))
                continue
            bad_in_a_row = 0
            self.events.put(("frame", self.index, _Frame(frames, frame.name, bgr if self.keep_bgr else None, rgb, x,
                                                         (t0, t1, clock()), skipped_so_far(source, bad))))
            frames += 1


@dataclass
class _Source:
    """The main thread's view of one source: its outputs, reorder buffer and counters."""

    index: int
    spec: str
    source: FrameSource
    loop: SourceOutputs
    reader: _Reader | None = None
    results: dict[int, tuple] = field(default_factory=dict)  # seq -> (frame, outputs, t_start, t_done)
    delivered: int = 0  # frames written, in order: also the next seq to write
    received: int = 0  # frames the reader handed over
    timed: int = 0  # frames written after the warm-up
    t_last: float | None = None  # when its last frame was written
    end: _End | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None and self.delivered == self.received


def run_pipeline(config: RunConfig, *, backend=None, sources: list[FrameSource] | None = None, window=None,
                 should_stop: Callable[[], bool] = lambda: False, clock=None) -> RunSummary:
    """runtime.app.run for throughput mode or several sources (it calls this); the same contract: what is passed in
    is the caller's to close, errors before the first frame raise, every ending returns a RunSummary."""
    import time

    clock = clock or time.perf_counter
    specs = config.sources
    if sources is not None and len(sources) != len(specs):
        raise ValueError(f"{len(sources)} sources passed for {len(specs)} in the config")
    owned: list = []
    busy: set[int] = set()  # id() of the sources whose reader is still inside a read at the end
    try:
        if backend is None:
            backend = open_backend(config)
            owned.append(backend)
        if sources is None:
            sources = []
            for spec in specs:
                sources.append(open_source(spec, loop=config.loop, retries=config.retries, backoff_s=config.backoff_s,
                                           max_failures=config.max_bad_frames, timeout_s=config.timeout))
                owned.append(sources[-1])
        several = len(specs) > 1
        states = []
        for i, (spec, source) in enumerate(zip(specs, sources)):
            win = window if window is not None and not several else None
            if win is None and not config.headless and not config.benchmark:
                suffix = f" - source {i} {spec}" if several else ""
                win = Window(f"dualpath - {Path(config.model).name}{suffix}")
                owned.append(win)
            own = dataclasses.replace(config, source=spec, jsonl=indexed_path(config.jsonl, i, len(specs)),
                                      save=indexed_path(config.save, i, len(specs)), mode="latency", requests=None,
                                      batch=1)
            tag = {"source": i, "source_name": spec} if several else None
            states.append(_Source(i, spec, source, SourceOutputs(own, backend, source, win, tag)))
        for state in states:
            state.loop.announce()
        requests = 1 if config.mode == "latency" else config.requests
        runner = runner_for(backend, requests, config.batch)
        try:
            return _Pipeline(config, backend, runner, states, should_stop, clock, busy).run()
        finally:
            runner.close()
    finally:
        for thing in reversed(owned):
            if id(thing) in busy:
                continue  # a reader still inside its read: closing the capture under it could crash OpenCV
            thing.close()


class _Pipeline:
    def __init__(self, config: RunConfig, backend, runner, states: list[_Source], should_stop, clock,
                 busy: set[int]) -> None:
        self.config, self.backend, self.runner, self.states = config, backend, runner, states
        self.should_stop, self.clock, self.busy = should_stop, clock, busy
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.stop = threading.Event()
        self.ready: deque[tuple[_Source, _Frame]] = deque()
        self.in_flight = 0
        self.in_flight_sum = self.starts = 0
        self.size = int(backend.metadata.image_size)
        self.input_name = getattr(backend.metadata, "input_name", contract.INPUT_NAME)
        capacity = max(1, (config.max_frames or 0) * len(states) - config.warmup) if config.max_frames else None
        capacity = capacity or DEFAULT_CAPACITY
        self.recorder = LatencyRecorder(capacity)
        self.frame_ms = np.full(capacity, np.nan)  # frame latencies, a ring as the recorder's
        self.delivered = 0
        self.t_start = self.rss_start = None
        self.stop_reason = ""  # the run's own ending: interrupted, window closed, inference failed
        self.failed = ""  # inference failed: the message

    # ------------------------------------------------------------------------------------------------ main loop

    def run(self) -> RunSummary:
        config = self.config
        slots = 2 * self.runner.requests * self.runner.batch + 2
        if config.warmup == 0:
            self.t_start, self.rss_start = self.clock(), rss_mib()
        for state in self.states:
            pre = Preprocessor.from_metadata(self.backend.metadata)
            state.reader = _Reader(state.index, state.source, pre, config, self.events, self.stop,
                                   threading.Semaphore(slots), state.loop.draw, self.clock)
            state.reader.start()
        try:
            try:
                self._loop()
            except KeyboardInterrupt:  # run() without the CLI's signal handlers
                self.stop_reason = self.stop_reason or "interrupted"
            self._drain()
        except BaseException:
            self._end_readers()
            for state in self.states:
                try:
                    state.loop.close(None)
                except RunError:
                    pass  # the exception on its way says more
            raise
        self._end_readers()
        return self._summary()

    def _loop(self) -> None:
        while not all(s.finished for s in self.states):
            if self.should_stop():
                self.stop_reason = "interrupted"
                return
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            while True:
                self._handle(event)
                try:
                    event = self.events.get_nowait()
                except queue.Empty:
                    break
            if self.failed:
                return
            self._submit()
            if not self._deliver():
                self.stop_reason = "window closed"
                return

    def _drain(self) -> None:
        """After a stop: no new requests; the ones in flight finish and what can be written in order is."""
        self.stop.set()
        while self.in_flight:
            self._handle(self.events.get())
        if not self.failed:
            self._deliver()

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "frame":
            state = self.states[event[1]]
            state.received += 1
            self.ready.append((state, event[2]))
        elif kind == "end":
            self.states[event[1]].end = event[2]
        else:  # "done"
            _, batch, out, t_start, t_done = event
            self.in_flight -= 1
            if isinstance(out, BaseException):
                self.failed = self.failed or str(out)
                return
            for k, (state, frame) in enumerate(batch):
                state.results[frame.seq] = (frame, {name: v[k : k + 1] for name, v in out.items()}, t_start, t_done)

    def _submit(self) -> None:
        """Start requests while fewer than --requests are in flight: full batches, or a short one (padded) when the
        device would otherwise wait (nothing in flight) or no more frames are coming (every reader ended)."""
        b = self.runner.batch
        while self.ready and self.in_flight < self.runner.requests and not self.stop.is_set():
            if len(self.ready) < b and self.in_flight and not all(s.end for s in self.states):
                return
            batch = [self.ready.popleft() for _ in range(min(b, len(self.ready)))]
            x = batch[0][1].x if b == 1 else _stack([f.x for _, f in batch], b)
            self.in_flight_sum += self.in_flight
            self.starts += 1
            self.in_flight += 1
            t_start = self.clock()
            try:
                self.runner.start(x, lambda out, batch=batch, t=t_start: self.events.put(
                    ("done", batch, out, t, self.clock())))
            except BackendError as e:
                self.in_flight -= 1
                self.failed = self.failed or str(e)
                return

    def _deliver(self) -> bool:
        """Write every result whose frame is next in its source's order; False when a window was closed."""
        config, clock = self.config, self.clock
        for state in self.states:
            while state.delivered in state.results:
                frame, out, t_start, t_done = state.results.pop(state.delivered)
                loop = state.loop
                t_post = clock()
                probs = np.asarray(out[contract.OUTPUT_PROBS], np.float32)[0]
                scores = loop.smoother(probs) if loop.smoother else probs
                labels = select_labels(scores, loop.class_names, config.threshold, config.top)
                post = clock() - t_post
                read, pre = frame.t[1] - frame.t[0], frame.t[2] - frame.t[1]
                stamps = np.cumsum([frame.t[0], read, pre, t_done - t_start, post]).tolist()
                t_out = clock()
                keep_going = loop.outputs(frame.seq, frame.name, frame.bgr, frame.rgb, out, labels, stamps,
                                          frame.skipped)
                now = clock()
                state.reader.slots.release()
                if state.t_last is not None:
                    loop.fps_ema = update_fps(loop.fps_ema, now - state.t_last)
                state.delivered += 1
                state.t_last = now
                self.delivered += 1
                if self.delivered > config.warmup:
                    state.timed += 1
                    self.frame_ms[self.recorder.count % len(self.frame_ms)] = (now - frame.t[0]) * 1000.0
                    self.recorder.add((read, pre, t_done - t_start, post, now - t_out))
                elif self.delivered == config.warmup:
                    self.t_start, self.rss_start = clock(), rss_mib()
                if not keep_going:
                    return False
        return True

    def _end_readers(self) -> None:
        self.stop.set()
        for state in self.states:
            state.reader.join(JOIN_S)
            if state.reader.is_alive():
                self.busy.add(id(state.source))
            while state.end is None:  # its end event, or what is left of its frames
                try:
                    self._handle(self.events.get(timeout=0.01))
                except queue.Empty:
                    if not state.reader.is_alive():
                        break
                    state.end = _End("stopped", exitcodes.OK, gave_up=False)

    # ------------------------------------------------------------------------------------------------ summary

    def _outcome(self, state: _Source) -> tuple[str, int]:
        end = state.end or _End("stopped", exitcodes.OK, gave_up=False)
        if self.stop_reason or self.failed:
            if not (end.gave_up and state.finished):  # the run's ending ended this source
                return (f"inference failed: {self.failed}" if self.failed else self.stop_reason), exitcodes.OK
        if state.delivered == 0 and end.gave_up:
            detail = end.reason + (f"; {end.last_error}" if end.last_error and end.last_error not in end.reason else "")
            return f"no usable frame from the source ({detail})", exitcodes.BAD_INPUT
        return end.reason, end.exit_code

    def _summary(self) -> RunSummary:
        config, states = self.config, self.states
        outcomes = [self._outcome(s) for s in states]
        codes = [code for _, code in outcomes]
        if self.failed:
            reason, code = f"inference failed: {self.failed}", exitcodes.VERDICT
        else:
            if all(c == exitcodes.BAD_INPUT for c in codes):
                code = exitcodes.BAD_INPUT
            elif any(c != exitcodes.OK for c in codes):
                code = exitcodes.VERDICT
            else:
                code = exitcodes.OK
            reason = self.stop_reason if self.stop_reason and len(states) == 1 else ""
        if len(states) == 1:
            reason = reason or outcomes[0][0]
        else:
            parts = [f"source {s.index} ({s.spec}): {s.delivered} frames, {text}" for s, (text, _) in zip(states, outcomes)]
            reason = "; ".join(([reason] if reason else []) + parts)
        notes = []
        error = None
        for state, (_, source_code) in zip(states, outcomes):
            ok = code == exitcodes.OK or (source_code == exitcodes.OK and not self.failed)
            try:
                notes += state.loop.close(ok)
            except RunError as e:
                error = error or e
        if error is not None:
            raise error
        if notes:
            reason += "; " + "; ".join(notes)
        now = self.clock()
        seconds = now - self.t_start if self.t_start is not None else 0.0
        timed = self.recorder.count
        frame_ms = self.frame_ms[~np.isnan(self.frame_ms)]
        report = BenchmarkReport(
            backend=getattr(self.backend, "name", "?"), model=config.model, source=", ".join(config.sources),
            frames=timed, warmup=min(config.warmup, self.delivered), seconds=seconds,
            fps=timed / seconds if seconds > 0 else 0.0, latency_ms=self.recorder.stats(),
            rss_start_mib=self.rss_start, rss_end_mib=rss_mib(), peak_rss_mib=peak_rss_mib(),
            mode=config.mode, requests=self.runner.requests, batch=self.runner.batch, runner=self.runner.description,
            mean_in_flight=self.in_flight_sum / self.starts + 1 if self.starts else None,
            frame_latency_ms={"p50": float(np.percentile(frame_ms, 50)), "p95": float(np.percentile(frame_ms, 95))}
            if len(frame_ms) and config.mode == "throughput" else {},
            sources=[{"source": s.spec, "frames": s.timed,
                      "seconds": (s.t_last or now) - self.t_start if self.t_start is not None else 0.0,
                      "fps": s.timed / ((s.t_last or now) - self.t_start)
                      if self.t_start is not None and (s.t_last or now) > self.t_start else 0.0}
                     for s in states] if len(states) > 1 else [],
        )
        bad = sum((s.end.bad if s.end else 0) for s in states)
        skipped = [f for s in states for f in getattr(s.source, "skipped", [])]
        undecodable = sum(getattr(s.source, "undecodable", 0) for s in states)
        return RunSummary(self.delivered, bad, reason, code, report, skipped, undecodable)


def _stack(xs: list[np.ndarray], batch: int) -> np.ndarray:
    """(n, 3, s, s) of n <= batch frames, padded to `batch` with copies of the last (its results are dropped): one
    compiled shape for every request."""
    x = np.empty((batch, *xs[0].shape[1:]), np.float32)
    for i, xi in enumerate(xs):
        x[i] = xi[0]
    x[len(xs):] = xs[-1][0]
    return x
