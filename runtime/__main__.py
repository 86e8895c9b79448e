"""python -m runtime --model MODEL --source SOURCE [options]: the exported model on camera frames, video or images.

Nothing runs at import; main(argv) -> exit code. numpy + OpenCV + one inference backend, never torch.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from dualpath import exitcodes
from dualpath.cli import default, fill  # telemetry off, before anything imports openvino / nncf / onnxruntime

EPILOG = """\
sources:
  csi://0[?width=1280&height=720&fps=30&flip=0]   Jetson CSI camera (needs OpenCV with GStreamer: JetPack's)
  /dev/video0 | 0                                USB / V4L2 camera
  rtsp://host/path                               network stream
  clip.mp4 | photo.png | folder/                 video file, image, folder of images (name order)

models (--backend auto picks by file type and what is installed):
  model.onnx -> onnxruntime   model.xml -> openvino   model.engine -> tensorrt (built on this device)

exit codes:
  0  the source ended, --max-frames was reached, q / Esc in the window, or Ctrl-C / SIGTERM (a summary is printed)
  1  the run failed midway (a summary is printed): a live source stopped delivering frames and did not come back
     after --retries reopen attempts, a video stopped decoding for --max-bad-frames frames in a row, or inference
     failed
  2  bad input or environment (one line says what to do): a bad command line; a model, source or output that
     cannot be used, at the start or when writing (a full disk); an output that is also a file the run reads (the
     model, its .bin / sidecar, the source); a source that gave no usable frame at all, or that did not answer
     within --timeout
  A run that fails (1 or 2) leaves existing --jsonl / --save / --benchmark-json files as they were.

examples:
  python -m runtime --model model_int8.xml --source /dev/video0 --top 3 --smooth 0.3
  python -m runtime --model model_int8.engine --source csi://0
  python -m runtime --model model_int8.xml --source clip.mp4 --headless --benchmark --loop --max-frames 10000
  python -m runtime --model model_int8.xml --source clip.mp4 --benchmark --loop --max-frames 10000 --mode throughput
  python -m runtime --model model_int8.xml --source /dev/video0 --source rtsp://cam/1 --headless --jsonl out.jsonl

several sources (--source repeated): one process, a reader thread per source, frames in order per source; a source
that ends or is lost ends only itself, the run ends when all have (exit 1 if any failed midway or gave no frame, 2
if none gave a usable frame); each source's --jsonl / --save are replaced only when that source ended well.
"""


def build_parser() -> argparse.ArgumentParser:
    """RunConfig's fields as flags (dest = field; defaults and choices read from runtime.app and runtime.backends)."""
    from runtime.app import MODES, RunConfig  # numpy + OpenCV, no backend imported
    from runtime.backends import BACKENDS  # the table of backends

    def d(name: str):
        return default(RunConfig, name)

    p = argparse.ArgumentParser(
        prog="python -m runtime",
        description="Run the exported dual-path model on a camera, stream, video, image or folder of images: "
        "labels with scores and the reconstruction, in a window, a video and/or JSON lines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="exported model: .onnx, OpenVINO .xml, TensorRT .engine")
    p.add_argument("--source", required=True, action="append",
                   help="camera, stream, video, image or folder (see below); repeat it for several sources in one "
                   "process, each with its own outputs")
    p.add_argument("--backend", default=d("backend"), choices=("auto", *BACKENDS),
                   help=f"inference backend (default: {d('backend')}, by the model's file type and what is installed)")
    out = p.add_argument_group("output")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument("--jsonl", metavar="FILE", help="write one JSON line per frame (time, labels, scores, latency); "
                     "with several sources one file each, the source's index before the suffix (out.0.jsonl, "
                     "out.1.jsonl), each line carrying the source's index and name")
    out.add_argument("--save", metavar="VIDEO", help="write the overlay to a video (.mp4, .avi, .mkv); with several "
                     "sources one each, named as --jsonl's (overlay.0.mp4, overlay.1.mp4)")
    out.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (of each source)")
    labels = p.add_argument_group("labels")
    labels.add_argument("--threshold", type=float, default=d("threshold"),
                        help=f"show classes scoring at or above this (default {d('threshold')})")
    labels.add_argument("--top", type=int, metavar="K", help="show at most K labels, best first")
    labels.add_argument("--smooth", type=float, metavar="ALPHA",
                        help="average scores over frames (EMA weight of the new frame, in (0, 1]; 0.3 is steady)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU inference threads (default: the backend's choice; "
                   "ONNX Runtime in throughput mode: 1 per request)")
    inference = p.add_argument_group("inference")
    inference.add_argument("--mode", default=d("mode"), choices=MODES,
                     help=f"latency: one frame at a time, the lowest latency for one camera (default {d('mode')}); "
                     "throughput: several requests in flight while the next frames are read and preprocessed, the "
                     "most frames/s on a video or several sources")
    inference.add_argument("--requests", type=int, metavar="N",
                     help="throughput mode: requests in flight (default: twice OpenVINO's "
                     "OPTIMAL_NUMBER_OF_INFER_REQUESTS for the device, two per CPU core for ONNX Runtime, 2 for "
                     "TensorRT)")
    inference.add_argument("--batch", type=int, default=d("batch"), metavar="B",
                     help=f"throughput mode: frames per request, stacked across sources (default {d('batch')})")
    inference.add_argument("--device", default=d("device"), metavar="DEVICE",
                     help=f"OpenVINO device: CPU, GPU, NPU, AUTO (or GPU.1, AUTO:GPU,CPU ...; default {d('device')})")
    inference.add_argument("--provider", metavar="NAME",
                     help="ONNX Runtime execution provider, e.g. CUDAExecutionProvider (default: CUDA where this "
                     "onnxruntime has it, else the CPU); one this onnxruntime lacks is refused, naming those it has")
    src = p.add_argument_group("source")
    src.add_argument("--retries", type=int, default=d("retries"),
                     help=f"reopen a live source this many times when it stops delivering (default {d('retries')})")
    src.add_argument("--loop", action="store_true", help="start video files and images again at their end")
    src.add_argument("--timeout", type=float, default=d("timeout"), metavar="SECONDS",
                     help="how long a camera or stream (rtsp://, http://) may take to open and give a frame, at the "
                     f"start and at each reopen (default {d('timeout'):g}); 'connecting to ...' is printed meanwhile")
    src.add_argument("--max-bad-frames", type=int, default=d("max_bad_frames"), metavar="N",
                     help=f"end the run after N undecodable or unusable frames in a row (default {d('max_bad_frames')}; "
                     "fewer are skipped and counted in the summary and the JSON lines)")
    bench = p.add_argument_group("benchmark")
    bench.add_argument("--benchmark", action="store_true",
                       help="headless; print latency p50/p95 per stage, frames/s and memory at the end")
    bench.add_argument("--benchmark-json", metavar="FILE", help="also write the benchmark report as JSON")
    bench.add_argument("--warmup", type=int, metavar="N", help="frames before timing starts (default 20 with --benchmark)")
    return p


class StopOnSignal:
    """SIGINT / SIGTERM ask the loop to stop after the current frame (so videos and JSON files end cleanly);
    a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum, _frame) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> "StopOnSignal":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)

    # Imported here so that --help and command-line errors answer at once.
    from runtime.app import RunConfig, RunError, run
    from runtime.backends import BackendError
    from runtime.overlay import DisplayError
    from runtime.sources import SourceError

    try:
        config = fill(RunConfig, args, headless=args.headless or args.benchmark)
    except ValueError as e:
        parser.print_usage(sys.stderr)
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        with StopOnSignal() as stop:
            summary = run(config, should_stop=stop)
    except (RunError, SourceError, DisplayError, BackendError) as e:  # the model, source or an output
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(summary.line())
    if summary.exit_code != exitcodes.OK:  # a failed run replaces no output: --benchmark-json is not written either
        kept = f"; --benchmark-json {config.benchmark_json} not written" if config.benchmark_json else ""
        print(f"error: {summary.end_reason}{kept}", file=sys.stderr)
    if config.benchmark:
        print(summary.report.line())
    if config.benchmark_json and summary.exit_code == exitcodes.OK:
        try:
            summary.report.write_json(config.benchmark_json)
        except OSError as e:
            print(f"error: cannot write --benchmark-json {config.benchmark_json}: {e.strerror or e}", file=sys.stderr)
            return exitcodes.BAD_INPUT
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
