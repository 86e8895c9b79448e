"""Latency per stage, frame rate and resident memory of a runtime loop; the --benchmark line and JSON.

Stages, timed per frame with one clock:  read (source) | pre (crop, resize, normalise) | infer (backend) |
post (smoothing, labels, reconstruction to pixels) | out (overlay, window, video, JSON lines). `total` is their sum.
Memory: resident set size from /proc/self/statm, taken after the warm-up frames (backends allocate on their first
inferences) and at the end; a loop that leaks shows it as growth over a long run (e.g. 10,000 frames).
Throughput mode (runtime.pipeline) times the same stages per frame, `infer` from the request's start to its end (the
frames of a batch share it), and adds the frame latency (read start to results written, queues included), the
requests in flight and each source's frames/s.
"""
from __future__ import annotations

import json
import os
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

STAGES = ("read", "pre", "infer", "post", "out")
DEFAULT_CAPACITY = 100_000  # frames whose latencies are kept for percentiles (a ring: longer runs keep the latest)


class LatencyRecorder:
    """Per-frame stage times in a preallocated ring, so recording adds no memory while the loop runs."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1 frame, got {capacity}")
        # np.full writes every page now, so the ring is part of the start RSS, not growth seen later.
        self._ms = np.full((capacity, len(STAGES)), np.nan, np.float64)
        self.count = 0  # frames recorded in all (may exceed capacity)

    def add(self, seconds: tuple[float, ...]) -> None:
        if len(seconds) != len(STAGES):
            raise ValueError(f"expected {len(STAGES)} stage times {STAGES}, got {len(seconds)}")
        row = self._ms[self.count % len(self._ms)]
        row[:] = seconds
        row *= 1000.0
        self.count += 1

    def samples(self) -> np.ndarray:
        """(frames kept, stages + 1) milliseconds; the last column is the total."""
        kept = self._ms[: min(self.count, len(self._ms))]
        return np.concatenate([kept, kept.sum(axis=1, keepdims=True)], axis=1)

    def stats(self) -> dict[str, dict[str, float]]:
        """{stage: {p50, p95, mean}} in milliseconds, stages plus 'total'; empty when nothing was recorded."""
        ms = self.samples()
        if not len(ms):
            return {}
        p50, p95 = np.percentile(ms, [50, 95], axis=0)
        mean = ms.mean(axis=0)
        names = STAGES + ("total",)
        return {n: {"p50": float(p50[i]), "p95": float(p95[i]), "mean": float(mean[i])} for i, n in enumerate(names)}


def rss_mib() -> float | None:
    """Current resident set size in MiB (Linux /proc); None where /proc is not there."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS; this project's targets are Linux boards and servers).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class BenchmarkReport:
    backend: str
    model: str
    source: str
    frames: int  # frames timed (after warm-up)
    warmup: int  # frames run before timing started
    seconds: float  # wall time of the timed frames
    fps: float  # timed frames / seconds, end to end (reading the source included)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_start_mib: float | None = None
    rss_end_mib: float | None = None
    peak_rss_mib: float | None = None
    mode: str = "latency"  # "latency" | "throughput"
    requests: int = 1  # throughput mode: requests allowed in flight...
    mean_in_flight: float | None = None  # ...and how many were, on average, when one was started
    batch: int = 1  # frames per request
    runner: str = ""  # how the requests run ("OpenVINO AsyncInferQueue, THROUGHPUT hint")
    frame_latency_ms: dict[str, float] = field(default_factory=dict)  # throughput mode: read start -> written
    sources: list[dict] = field(default_factory=list)  # several sources: {source, frames, seconds, fps} each

    @property
    def rss_growth_mib(self) -> float | None:
        if self.rss_start_mib is None or self.rss_end_mib is None:
            return None
        return self.rss_end_mib - self.rss_start_mib

    def to_dict(self) -> dict:
        return asdict(self) | {"rss_growth_mib": self.rss_growth_mib}

    def line(self) -> str:
        parts = [f"benchmark: {self.backend} {Path(self.model).name}, {self.frames} frames in {self.seconds:.2f} s "
                 f"= {self.fps:.1f} frames/s end to end"]
        if self.mode == "throughput":
            in_flight = f" (mean {self.mean_in_flight:.2f})" if self.mean_in_flight is not None else ""
            parts.append(f"throughput mode: {self.requests} requests in flight{in_flight} x batch {self.batch}, "
                         f"{self.runner}")
        if self.latency_ms:
            stages = ", ".join(f"{s} {v['p50']:.2f}/{v['p95']:.2f}" for s, v in self.latency_ms.items())
            parts.append(f"latency ms p50/p95: {stages}")
        if self.frame_latency_ms:
            parts.append(f"frame latency ms p50/p95 {self.frame_latency_ms['p50']:.2f}/{self.frame_latency_ms['p95']:.2f}")
        for i, s in enumerate(self.sources):
            parts.append(f"source {i} {s['source']}: {s['frames']} frames, {s['fps']:.1f} frames/s")
        if self.rss_growth_mib is not None:
            parts.append(f"rss {self.rss_start_mib:.1f} -> {self.rss_end_mib:.1f} MiB ({self.rss_growth_mib:+.1f})")
        return " | ".join(parts)

    def write_json(self, path: str | Path) -> None:
        from dualpath.files import write_text

        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")  # atomically: a whole report or the old one
