"""Our backends beside OpenVINO's benchmark_app on the same files, in the same run (issue 21): for every OpenVINO IR of
an export (FP32 in f32, bf16, INT8, FP16) and its ONNX models, latency mode (synchronous calls at batch 1, p50) and
throughput mode (the runtime's runner with the THROUGHPUT hint, its default requests in flight, frames/s over a fixed
time), benchmark_app on the same IR with the same hint and inference precision, the ratio ours / peer, and the
runtime's own end-to-end figure (python -m runtime on a video, both modes).

    python -m benchmarks.throughput --export runs/demo/export [--video clip.mp4] [--seconds 3] [--rounds 1]
                                    [--threads N] [--artifacts model_int8.xml,...] [--out benchmarks/results/throughput.json]

Every cell runs in a process of its own, and the cells are interleaved (per round, per artifact: ours, then the peer,
then the runtime, latency then throughput), so the slow spells of a shared machine fall on both tools alike; with
--rounds > 1 each figure is the median of its rounds, the spread (min-max) beside it. Our backend is opened as the
runtime opens it (runtime.config.open_backend: the LATENCY or THROUGHPUT hint, precision "auto": the FP32 IR in f32,
model_bf16.xml in bf16, the FP16 IR in f32 on CPUs, INT8 at the device's default) and benchmark_app is given the
inference precision our compiled model reports (-infer_precision), so both compute the same thing; the precision
benchmark_app reports is checked against it. benchmark_app runs the IRs only (it is OpenVINO's tool): ONNX rows have
no peer. benchmark_app ships with the openvino wheel (.venv/bin/benchmark_app); without it the peer columns are left
empty with a note (--benchmark-app PATH names another; a PATH that is not there is exit 2). No --video: a clip of
generated scenes is written with python -m runtime.demo_video (its defaults: 120 scenes, 256x256). The machine is
named in the table and the JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import ROOT, run_module, save_results
from dualpath import exitcodes
from dualpath.machine import describe, headline

# The artifacts timed, in table order (those the export holds): OpenVINO IRs (with a peer), then ONNX models.
ARTIFACTS = ("model_fp32.xml", "model_bf16.xml", "model_int8.xml", "model_fp16.xml", "model_fp32.onnx",
             "model_int8_u8.onnx")
MODES = ("latency", "throughput")
# benchmark_app's name of an inference precision (its "INFERENCE_PRECISION_HINT: <Type: 'float32'>" line) -> ours.
PEER_TYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "f32": "f32", "bf16": "bf16", "f16": "f16"}


# --- one cell of ours, in its own process (--only) -------------------------------------------------------------------

def ours(path: Path, mode: str, seconds: float, threads: int | None, warmup_s: float = 0.5) -> dict[str, Any]:
    """Our backend as the runtime opens it in `mode`, fed random batch-1 input for `seconds`: latency mode calls
    infer synchronously (p50 of the calls), throughput mode keeps the runner's requests in flight (frames/s)."""
    import threading

    import numpy as np

    from runtime.backends.runner import runner_for
    from runtime.config import RunConfig, open_backend

    backend = open_backend(RunConfig(model=str(path), source="-", mode=mode, threads=threads))
    size, name = backend.metadata.image_size, backend.metadata.input_name
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    out: dict[str, Any] = {"backend": backend.name, "compute": getattr(backend, "inference_precision", None),
                           "image_size": size}
    try:
        if mode == "latency":
            times = _timed_calls(lambda: backend.infer({name: x}), warmup_s, seconds)
            out |= {"p50_ms": 1000.0 * float(np.median(times)), "calls": len(times),
                    "fps": len(times) / float(np.sum(times))}
            return out
        runner = runner_for(backend)
        free, lock = threading.Semaphore(runner.requests), threading.Lock()
        finished = [0]
        errors: list[object] = []

        def done(result: object) -> None:  # from the backend's threads
            with lock:
                if isinstance(result, Exception):
                    errors.append(result)
                finished[0] += 1
            free.release()

        def run_for(duration: float) -> tuple[int, float]:
            start_count, t0 = finished[0], time.perf_counter()
            while time.perf_counter() - t0 < duration and not errors:
                free.acquire()
                runner.start(x, done)
            for _ in range(runner.requests):  # wait for what is in flight, then hand the slots back
                free.acquire()
            for _ in range(runner.requests):
                free.release()
            return finished[0] - start_count, time.perf_counter() - t0

        run_for(warmup_s)
        frames, elapsed = run_for(seconds)
        runner.close()
        if errors:
            raise RuntimeError(f"inference failed: {errors[0]}")
        out |= {"fps": frames / elapsed, "frames": frames, "requests": runner.requests, "runner": runner.description}
        return out
    finally:
        backend.close()


def _timed_calls(fn, warmup_s: float, seconds: float) -> list[float]:
    t_end = time.perf_counter() + warmup_s
    while time.perf_counter() < t_end:
        fn()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def ours_in_subprocess(path: Path, mode: str, seconds: float, threads: int | None) -> dict[str, Any]:
    done = run_module("benchmarks.throughput", ["--export", str(path.parent), "--only", path.name, "--only-mode", mode,
                                                "--seconds", str(seconds), *(["--threads", str(threads)] if threads else [])])
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the peer: benchmark_app -----------------------------------------------------------------------------------------

def find_benchmark_app(given: str | None) -> str | None:
    """--benchmark-app, else the one beside this Python (the openvino wheel's), else on PATH; None when none is."""
    if given:
        return given
    beside = Path(sys.executable).parent / "benchmark_app"
    return str(beside) if beside.is_file() else shutil.which("benchmark_app")


def peer_command(app: str, path: Path, mode: str, seconds: float, precision: str | None, image_size: int,
                 threads: int | None, work: Path) -> list[str]:
    """benchmark_app on `path` as our backend runs it: the hint, batch 1 (our backend compiles the model for batch 1),
    the inference precision ours compiled; --threads through a -load_config file (its -nthreads needs -hint none)."""
    config = []
    if threads:
        (work / "benchmark_app_threads.json").write_text(json.dumps({"CPU": {"INFERENCE_NUM_THREADS": str(threads)}}))
        config = ["-load_config", str(work / "benchmark_app_threads.json")]
    return [app, "-m", str(path), "-d", "CPU", "-hint", mode, "-t", f"{max(1, round(seconds))}",
            "-shape", f"[1,3,{image_size},{image_size}]", *(["-infer_precision", precision] if precision else []),
            *config]


MS = {"ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3}  # benchmark_app's latency units, in ms
UNITS = r"(ms|us|µs|s)\b"


def parse_benchmark_app(text: str) -> dict[str, Any]:
    """benchmark_app's report -> {median_ms, average_ms, fps, count, requests, compute}; ValueError without its
    "Median" latency or "Throughput" line (a failed run)."""
    found = {key: re.search(pattern, text) for key, pattern in {  # it writes a latency under 1 ms in us
        "median_ms": rf"Median:\s*([\d.]+)\s*{UNITS}", "average_ms": rf"Average:\s*([\d.]+)\s*{UNITS}",
        "fps": r"Throughput:\s*([\d.]+)\s*FPS", "count": r"Count:\s*(\d+)\s*iterations",
        "requests": r"(\d+) inference requests", "compute": r"INFERENCE_PRECISION_HINT:\s*<Type: '(\w+)'>"}.items()}
    if not (found["median_ms"] and found["fps"]):
        tail = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no output"]
        raise ValueError(f"benchmark_app gave no Median latency / Throughput line: {tail[0]}")
    out: dict[str, Any] = {k: float(m.group(1)) * (MS[m.group(2)] if k.endswith("_ms") else 1.0)
                           for k, m in found.items() if m and k in ("median_ms", "average_ms", "fps")}
    out["count"] = int(found["count"].group(1)) if found["count"] else None
    out["requests"] = int(found["requests"].group(1)) if found["requests"] else (1 if "synchronously" in text else None)
    out["compute"] = PEER_TYPES.get(found["compute"].group(1)) if found["compute"] else None
    return out


def peer(app: str, path: Path, mode: str, seconds: float, precision: str | None, image_size: int,
         threads: int | None, work: Path) -> dict[str, Any]:
    cmd = peer_command(app, path, mode, seconds, precision, image_size, threads, work)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{type(e).__name__}: {e}", "command": " ".join(cmd)}
    try:
        return parse_benchmark_app(done.stdout + done.stderr) | {"command": " ".join(cmd)}
    except ValueError as e:
        return {"error": f"{e} (exit {done.returncode})", "command": " ".join(cmd)}


# --- the runtime end to end ------------------------------------------------------------------------------------------

def runtime_e2e(path: Path, video: Path, mode: str, frames: int, threads: int | None, work: Path) -> dict[str, Any]:
    """python -m runtime on the video, headless, looping, --benchmark: its frames/s end to end (reading, decoding,
    preprocessing, inference, outputs) and its inference p50."""
    report = work / f"runtime_{path.stem}_{mode}.json"
    report.unlink(missing_ok=True)
    args = ["--model", str(path), "--source", str(video), "--headless", "--loop", "--max-frames", str(frames),
            "--benchmark", "--benchmark-json", str(report), "--mode", mode, *(["--threads", str(threads)] if threads else [])]
    done = run_module("runtime", args)
    if done.returncode != 0 or not report.is_file():
        return {"error": f"exit {done.returncode}: " + ((done.stderr.strip().splitlines() or ["?"])[-1])}
    r = json.loads(report.read_text())
    infer = (r.get("latency_ms") or {}).get("infer") or {}
    return {"fps": r.get("fps"), "frames": frames, "infer_p50_ms": infer.get("p50"),
            "requests": r.get("requests"), "command": "python -m runtime " + " ".join(args)}


# --- the run ---------------------------------------------------------------------------------------------------------

def cells(export: Path, names: list[str], video: Path | None, args, app: str | None, work: Path,
          log=print) -> dict[str, dict[str, Any]]:
    """{artifact: {mode: {"ours": [rounds], "peer": [...], "runtime": [...]}}}, interleaved: per round, per artifact,
    per mode, ours then the peer then the runtime."""
    results = {n: {m: {"ours": [], "peer": [], "runtime": []} for m in MODES} for n in names}
    for r in range(args.rounds):
        for name in names:
            path = export / name
            for mode in MODES:
                log(f"round {r + 1}/{args.rounds}: {name} {mode}")
                cell = results[name][mode]
                o = ours_in_subprocess(path, mode, args.seconds, args.threads)
                cell["ours"].append(o)
                if app and path.suffix == ".xml" and "error" not in o:
                    cell["peer"].append(peer(app, path, mode, args.seconds, o.get("compute"), o["image_size"], args.threads,
                                             work))
                if video is not None and "error" not in o:
                    frames = args.runtime_frames or max(200, int(o["fps"] * args.seconds))
                    cell["runtime"].append(runtime_e2e(path, video, mode, frames, args.threads, work))
    return results


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def summarize(name: str, mode: str, cell: dict[str, list[dict]]) -> dict[str, Any]:
    """One row: ours (p50 ms / frames/s), the peer's (median ms / FPS), the runtime's frames/s, medians over rounds
    with their spread, the ratios ours / peer and runtime / peer, and what each computed in."""
    key_ours, key_peer = ("p50_ms", "median_ms") if mode == "latency" else ("fps", "fps")
    good = {who: [c for c in cell[who] if "error" not in c] for who in cell}
    row: dict[str, Any] = {"artifact": name, "mode": mode}
    for who, key in (("ours", key_ours), ("peer", key_peer), ("runtime", "fps")):
        values = [c[key] for c in good[who] if isinstance(c.get(key), (int, float))]
        row[who] = _median(values)
        row[f"{who}_spread"] = [min(values), max(values)] if len(values) > 1 else None
        errors = [c["error"] for c in cell[who] if "error" in c]
        if errors:
            row[f"{who}_error"] = errors[-1]
    row["ours_fps"] = _median([c["fps"] for c in good["ours"] if "fps" in c])
    row["compute"] = next((c.get("compute") for c in good["ours"]), None)
    row["peer_compute"] = next((c.get("compute") for c in good["peer"]), None)
    row["requests"] = next((c.get("requests") for c in good["ours"]), None)
    row["peer_requests"] = next((c.get("requests") for c in good["peer"]), None)
    row["peer_fps"] = _median([c["fps"] for c in good["peer"] if "fps" in c])
    row["ratio_ours_peer"] = row["ours"] / row["peer"] if row["ours"] and row["peer"] else None
    row["ratio_runtime_peer_fps"] = row["runtime"] / row["peer_fps"] if row["runtime"] and row["peer_fps"] else None
    row["rounds"] = {who: cell[who] for who in cell}
    return row


def table(rows: list[dict[str, Any]], machine: str, notes: list[str]) -> str:
    """The printed table: latency rows in ms (lower is faster), throughput rows in frames/s (higher is faster)."""
    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    lines = [f"throughput beside benchmark_app, {machine}",
             f"{'artifact':<20}{'mode':<11}{'compute':<13}{'ours':>9}{'peer':>9}{'ours/peer':>10}"
             f"{'runtime fps':>12}{'rt/peer fps':>12}  requests ours/peer"]
    for r in rows:
        unit = ".2f" if r["mode"] == "latency" else ".0f"
        compute = (r["compute"] or "-") + ("" if r["peer_compute"] in (None, r["compute"]) else f" ({r['peer_compute']}!)")
        lines.append(f"{r['artifact']:<20}{r['mode']:<11}{compute:<13}{num(r['ours'], unit):>9}{num(r['peer'], unit):>9}"
                     f"{num(r['ratio_ours_peer'], '.2f'):>10}{num(r['runtime'], '.0f'):>12}"
                     f"{num(r['ratio_runtime_peer_fps'], '.2f'):>12}  {r['requests'] or ''}/{r['peer_requests'] or ''}")
    lines.append("latency rows: p50 ms (ours: synchronous infer; peer: benchmark_app -hint latency median), ours/peer "
                 "> 1 is slower; throughput rows: frames/s at batch 1, ours/peer < 1 is slower; runtime: python -m "
                 "runtime end to end on the video in that mode (decoding and preprocessing included); rt/peer fps: "
                 "runtime frames/s over benchmark_app's FPS in that mode (docs/design.md: >= 0.9 in throughput mode).")
    return "\n".join(lines + notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, required=True, help="folder written by python -m export")
    p.add_argument("--video", type=Path, help="video for the runtime's end-to-end figure (default: a generated clip)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per cell (default 3)")
    p.add_argument("--rounds", type=int, default=1, help="rounds over every cell, interleaved (default 1)")
    p.add_argument("--threads", type=int, help="inference threads for every tool (default: each tool's own choice)")
    p.add_argument("--artifacts", help=f"comma list of the files to time (default: those of {', '.join(ARTIFACTS)} "
                   "the export holds)")
    p.add_argument("--runtime-frames", type=int, default=None,
                   help="frames per runtime run (default: what ours did in --seconds, at least 200); 0: no runtime runs")
    p.add_argument("--benchmark-app", help="benchmark_app to compare with (default: the openvino wheel's, beside "
                   "this Python, else on PATH)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/throughput.json")
    p.add_argument("--only", help=argparse.SUPPRESS)  # one cell of ours in this process, as a JSON line
    p.add_argument("--only-mode", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.only:
        try:
            print(json.dumps(ours(args.export / args.only, args.only_mode, args.seconds, args.threads)))
        except Exception as e:  # noqa: BLE001 - the parent records it in the cell and goes on
            print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
            return exitcodes.VERDICT
        return exitcodes.OK
    if args.seconds <= 0 or args.rounds < 1 or (args.threads is not None and args.threads < 1):
        print("error: --seconds must be > 0, --rounds and --threads >= 1", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if not (args.export / "manifest.json").is_file():
        print(f"error: no manifest.json in {args.export}: export a checkpoint first (python -m export --int8 --bf16)",
              file=sys.stderr)
        return exitcodes.BAD_INPUT
    names = [n for n in (args.artifacts.split(",") if args.artifacts else ARTIFACTS) if n]
    missing = [n for n in names if not (args.export / n).is_file()]
    if args.artifacts and missing:
        print(f"error: {', '.join(missing)} not in {args.export}; it holds "
              f"{', '.join(n for n in ARTIFACTS if (args.export / n).is_file())}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    names = [n for n in names if n not in missing]
    if not names:
        print(f"error: {args.export} holds none of {', '.join(ARTIFACTS)}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    notes = []
    app = find_benchmark_app(args.benchmark_app)
    if args.benchmark_app and not (Path(app).is_file() or shutil.which(app)):
        print(f"error: --benchmark-app {app} is not there; it comes with the openvino wheel (pip install openvino: "
              ".venv/bin/benchmark_app), or leave the flag out", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if app is None:
        notes.append("no benchmark_app found (it comes with the openvino wheel: pip install openvino, then "
                     ".venv/bin/benchmark_app): the peer columns are empty")
    if "model_bf16.xml" not in names and (args.export / "model_fp32.xml").is_file() and not args.artifacts:
        notes.append("no model_bf16.xml in this export (python -m export --bf16 writes it): no bf16 row")
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        work = Path(tmp)
        video = args.video
        if video is not None and not video.is_file():
            print(f"error: no video at {video}; give a video file or leave --video out (a generated clip)", file=sys.stderr)
            return exitcodes.BAD_INPUT
        if args.runtime_frames == 0:
            video = None
        elif video is None:
            video = work / "clip.mp4"
            made = run_module("runtime.demo_video", ["--out", str(video)])
            if made.returncode != 0:
                print(f"error: could not write the clip: {(made.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
                return exitcodes.BAD_INPUT
        results = cells(args.export, names, video, args, app, work, log=lambda s: print(s, file=sys.stderr, flush=True))
    rows = [summarize(n, m, results[n][m]) for n in names for m in MODES]
    for r in rows:
        if r["peer_compute"] and r["compute"] and r["peer_compute"] != r["compute"]:
            notes.append(f"{r['artifact']} {r['mode']}: benchmark_app computed in {r['peer_compute']}, ours in {r['compute']}")
    info = describe() | {"threads": args.threads, "rounds": args.rounds, "seconds": args.seconds}
    print(table(rows, headline(info), notes))
    manifest = json.loads((args.export / "manifest.json").read_text())
    result = {"machine": info, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "export": str(args.export),
              "model": (manifest.get("checkpoint") or {}).get("model_config"),
              "video": str(args.video) if args.video else "generated: python -m runtime.demo_video defaults",
              "benchmark_app": app, "rows": rows, "notes": notes}
    return save_results(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
