"""What a run writes, per source: each frame's labels (select_labels) to JSON lines, the overlay video and the window
(SourceOutputs); every output file written so that a failed run leaves an existing one as it was (OutputFile); the
check, before anything opens, that no output is a file the run reads; and the run's summary line (RunSummary).
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dualpath import contract
from runtime.bench import STAGES, BenchmarkReport
from runtime.config import VIDEO_CODECS, RunConfig, RunError, indexed_path
from runtime.overlay import Window, overlay_size, render_overlay
from runtime.preprocess import Preprocessor
from runtime.smoothing import ScoreSmoother
from runtime.sources import FrameSource, SourceError, source_files

log = logging.getLogger("runtime")


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


OUTPUT_FLAGS = {"jsonl": "--jsonl", "save": "--save", "benchmark_json": "--benchmark-json"}


def check_outputs(config: RunConfig) -> None:
    """Before anything is opened: every output can be written, and none is a file the run reads (the model, its
    weights or sidecar, the source video / image / any image of the source folder) or another output. RunError."""
    from dualpath.files import check_writable, refuse_output_over_input
    from runtime.backends import model_files

    sources = config.sources
    outputs = {}
    for name, flag in OUTPUT_FLAGS.items():
        if not getattr(config, name):
            continue
        if name == "benchmark_json" or len(sources) == 1:
            outputs[flag] = getattr(config, name)
        else:  # one file per source: out.0.jsonl, out.1.jsonl
            outputs.update({f"{flag} (source {i})": indexed_path(getattr(config, name), i, len(sources))
                            for i in range(len(sources))})
    if not outputs:
        return
    try:
        for flag, path in outputs.items():
            if not (Path(path).is_char_device() or Path(path).is_fifo()):  # /dev/full, a pipe: written as they are
                check_writable(path, "file", flag.split()[0])
        read = []
        for source in sources:
            try:
                read += source_files(source)
            except (SourceError, OSError):  # the source's own error comes when it is opened
                pass
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


class SourceOutputs:
    """One source's frames in a run: its preprocessing, score smoothing and outputs (JSON lines, overlay video,
    window)."""

    def __init__(self, config: RunConfig, backend, source: FrameSource, window: Window | None,
                 tag: dict | None = None) -> None:
        """tag: fields every JSON line carries (with several sources: the source's index and name)."""
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
        self.tag = tag or {}

    def outputs(self, index: int, frame_name: str, bgr, rgb, out, labels, t: list[float], skipped: int = 0) -> bool:
        """Write / show one frame's results; False when the user closed the window. `skipped`: source frames skipped
        so far (undecodable or unusable), in every JSON line."""
        if self.jsonl:
            self.jsonl.write({
                **self.tag, "frame": index, "time": round(time.time(), 6),
                **({"name": frame_name} if frame_name else {}),
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


def skipped_so_far(source: FrameSource, unusable: int) -> int:
    """Source frames and images skipped so far: undecodable, unreadable or unusable."""
    return unusable + getattr(source, "undecodable", 0) + len(getattr(source, "skipped", ()))


def update_fps(previous: float | None, frame_seconds: float) -> float | None:
    if frame_seconds <= 0:
        return previous
    fps = 1.0 / frame_seconds
    return fps if previous is None else 0.9 * previous + 0.1 * fps  # steady readout, follows changes within ~10 frames
