"""What a run of `python -m runtime` is asked to do: RunConfig (every field checked when it is made, so a bad flag is
found before anything opens), and the backend it asks for (open_backend).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from runtime.sources import OPEN_TIMEOUT_S

log = logging.getLogger("runtime")

VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "FFV1"}
MAX_BAD_FRAMES_IN_A_ROW = 50  # default --max-bad-frames: then the source is not giving usable frames at all


@dataclass
class RunConfig:
    model: str
    source: str | Sequence[str]  # one source, or several (one process, each with its own outputs; runtime.pipeline)
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
    mode: str = "latency"  # "latency": one request at a time | "throughput": requests in flight (runtime.pipeline)
    requests: int | None = None  # throughput mode: requests in flight (None: the backend's default, Runner)
    batch: int = 1  # throughput mode: frames per request, stacked across sources
    device: str = "CPU"  # OpenVINO device: CPU, GPU, NPU, AUTO (or GPU.1, AUTO:GPU,CPU ...)
    provider: str | None = None  # ONNX Runtime execution provider (None: CUDA where installed, else the CPU)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            if not self.source:
                raise ValueError("--source is needed: a camera, stream, video, image or folder")
            self.source = tuple(self.source) if len(self.source) != 1 else self.source[0]
        if self.mode not in MODES:
            raise ValueError(f"--mode is one of {', '.join(MODES)}, got {self.mode!r}")
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"--requests must be >= 1, got {self.requests}")
        if self.batch < 1:
            raise ValueError(f"--batch must be >= 1 frame, got {self.batch}")
        if self.mode == "latency" and (self.requests not in (None, 1) or self.batch != 1):
            raise ValueError("--requests and --batch are for --mode throughput; latency mode runs one frame at a time")
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

    @property
    def sources(self) -> tuple[str, ...]:
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)

    @property
    def pipelined(self) -> bool:
        """Whether runtime.pipeline runs this (throughput mode, or several sources) rather than the latency loop."""
        return self.mode == "throughput" or len(self.sources) > 1


MODES = ("latency", "throughput")


def indexed_path(path: str | None, index: int, count: int) -> str | None:
    """An output named once for `count` sources, for source `index`: out.jsonl -> out.0.jsonl, out.1.jsonl (the
    path itself for one source)."""
    if path is None or count == 1:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}.{index}{p.suffix}"))


class RunError(RuntimeError):
    """The run cannot start or go on as asked (an output that cannot be written); the message says what to change."""


def open_backend(config: RunConfig):
    """The backend for config.model, with the options this run asks for: --threads (CPU backends; 1 per request in
    throughput mode unless given), --device and the hint (OpenVINO), --provider (ONNX Runtime). RunError for an
    option the backend does not take."""
    from runtime.backends import load_backend, resolve  # lazily: --help and config errors need no backend

    path = Path(config.model)
    name = resolve(path, config.backend) if path.is_file() else config.backend  # load_backend says what is missing
    throughput = config.mode == "throughput"
    options: dict = {}
    if name == "tensorrt":  # the backend checks that the engine fits this TensorRT and GPU
        if config.threads:
            log.warning("--threads is for CPU backends; a TensorRT engine runs on the GPU")
    elif config.threads or (throughput and name == "onnxruntime"):
        options["threads"] = config.threads or 1  # ONNX Runtime in throughput mode: one thread per request
    if config.device.upper() != "CPU" and name != "openvino":
        raise RunError(f"--device {config.device} is OpenVINO's; the {name} backend runs {path.name}"
                       + (" (choose its execution provider with --provider)" if name == "onnxruntime" else ""))
    if name == "openvino":
        options["device"] = config.device
        options["hint"] = "THROUGHPUT" if throughput else "LATENCY"
    if config.provider:
        if name != "onnxruntime":
            raise RunError(f"--provider {config.provider} is ONNX Runtime's; the {name} backend runs {path.name}")
        options["providers"] = [config.provider] + (["CPUExecutionProvider"]
                                                    if config.provider != "CPUExecutionProvider" else [])
    return load_backend(path, backend=config.backend, **options)
