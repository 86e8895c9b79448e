"""One table per export: for every model file the export wrote, its size, batch-1 latency p50 / p95 / p99, batch-32
throughput and drift deltas against its FP32 reference, in benchmark.md + benchmark.json beside the manifest, and for
the CPU it ran on the fastest artifact within its drift budget in each mode (fastest_within_budget: batch-1 latency
p50, batch-32 throughput; the FP32 artifacts always count, the others when their drift report passed).

    python -m export.benchmark --export runs/x/export [--threads 2] [--iters 200]
    python -m export ... --benchmark                    (the same, at the end of an export)

Each artifact is timed in its own fresh process (as benchmarks/inference.py does), so no other runtime's thread pool
spins beside it. The machine is named in both files: figures without it mean nothing. numpy + the runtime's
backends only (no torch). Run standalone, the two files are added to the export's manifest.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dualpath.cli import default, fill  # first: a command's telemetry is off (dualpath.cli)
from dualpath import exitcodes
from dualpath.machine import describe as describe_machine
from dualpath.metrics import HEADLINE_KEYS

BATCH = 32


def artifacts(manifest: dict[str, Any]) -> list[str]:
    """The model files the manifest lists (export.artifacts names them), FP32 first."""
    from export.artifacts import BY_NAME

    names = [n for n in manifest.get("files", {}) if n in BY_NAME]
    return sorted(names, key=lambda n: ("fp32" not in n, "fp16" not in n, n))


def artifact_bytes(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def time_one(path: Path, threads: int, iters: int, warmup: int = 10) -> dict[str, float]:
    """Batch-1 latency percentiles over `iters` calls and batch-32 throughput (median of its calls)."""
    from runtime.backends import load_backend

    options = {} if path.suffix == ".engine" else {"threads": threads}
    rng = np.random.default_rng(0)
    with load_backend(path, **options) as be:
        size = be.metadata.image_size
        x1 = rng.normal(size=(1, 3, size, size)).astype(np.float32)
        xb = rng.normal(size=(BATCH, 3, size, size)).astype(np.float32)
        lat = _times(lambda: be.infer({be.metadata.input_name: x1}), warmup, iters) * 1000.0
        thr = _times(lambda: be.infer({be.metadata.input_name: xb}), 2, max(3, iters // 20))
        compute = getattr(be, "inference_precision", None)  # OpenVINO: f32 / bf16 / f16 as the plugin compiled it
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99),
            f"batch{BATCH}_images_per_s": float(BATCH / np.median(thr)), "iters": iters, "compute": compute}


def _times(fn: Callable[[], Any], warmup: int, n: int) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out


def time_in_subprocess(path: Path, threads: int, iters: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "export.benchmark", "--export", str(path.parent), "--only", path.name,
           "--threads", str(threads), "--iters", str(iters)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"timing {path.name} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def combine(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """One row from an artifact's rounds (as benchmarks/inference.py): the lowest round's p50 (this shared VM has slow
    spells lasting minutes), the median round's p95 / p99, the best throughput; every round's p50 kept."""
    key = f"batch{BATCH}_images_per_s"
    return {"p50_ms": min(r["p50_ms"] for r in rounds), "p95_ms": float(np.median([r["p95_ms"] for r in rounds])),
            "p99_ms": float(np.median([r["p99_ms"] for r in rounds])), key: max(r[key] for r in rounds),
            "iters": rounds[0]["iters"], "compute": rounds[0].get("compute"),
            "rounds_p50_ms": [round(r["p50_ms"], 3) for r in rounds]}


def run_benchmark(folder: Path, manifest: dict[str, Any], bench=None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time every model file of the export in `folder` (bench.rounds rounds over all of them, each artifact in a fresh
    process every round; bench: export.config.BenchConfig, its defaults when None); write benchmark.md and
    benchmark.json there; return a summary for the manifest. Files the runtime here cannot load (a TensorRT engine
    without TensorRT) are listed, not timed."""
    from dualpath.files import inside
    from export.config import BenchConfig
    from runtime.backends import BackendError, available, resolve

    bench = bench or BenchConfig()
    if not manifest.get("files"):  # during an export, the manifest's file list is written when it is published
        manifest = manifest | {"files": {p.name: {} for p in folder.iterdir() if p.is_file()}}
    rows, timings = [], {}
    for name in artifacts(manifest):
        path = inside(folder, name, f"{folder / 'manifest.json'}'s files")  # never a file outside the export
        row: dict[str, Any] = {"artifact": name, "bytes": artifact_bytes(path),
                               "precision": _precision(manifest, name), "drift": _deltas(manifest, name, folder)}
        try:
            row["backend"] = resolve(path)
            if not available(row["backend"]):
                raise BackendError(f"{row['backend']} not installed")
            timings[name] = []
        except BackendError as e:
            row["skipped"] = str(e)
        rows.append(row)
    for r in range(bench.rounds):
        for name in timings:
            log(f"benchmark round {r + 1}/{bench.rounds}: {name} (its own process)")
            timings[name].append(time_in_subprocess(folder / name, bench.threads, bench.iters))
    for row in rows:
        if row["artifact"] in timings:
            row |= combine(timings[row["artifact"]])
    info = describe_machine() | {"threads": bench.threads, "rounds": bench.rounds}
    fastest = fastest_within_budget(rows, info)
    result = {"machine": info, "checkpoint": manifest.get("checkpoint", {}).get("sha256"), "rows": rows,
              "batch": BATCH, "fastest_within_budget": fastest, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    from export.atomic import write_json, write_text

    write_json(folder / "benchmark.json", result)
    write_text(folder / "benchmark.md", markdown(result))
    log(markdown(result))
    return {"table": "benchmark.md", "json": "benchmark.json", "machine": headline(info),
            "fastest_within_budget": {mode: (fastest[mode] or {}).get("artifact") for mode in MODES}
            | {"cpu_flags": fastest["cpu_flags"]}}


def _precision(manifest: dict[str, Any], name: str) -> str:
    from export.artifacts import BY_NAME

    recipe = manifest.get("recipes", {}).get(name, {})
    if "precision" in recipe:  # TensorRT engines: what the builder made of it
        return recipe["precision"]
    return BY_NAME[name].precision if name in BY_NAME else "?"


def _deltas(manifest: dict[str, Any], name: str, folder: Path | None = None) -> dict[str, Any] | None:
    """The drift deltas of `name` against its reference, whether they passed, and what the candidate computed in when
    its drift was measured (its drift.json's runtimes; None where unknown or not an OpenVINO model)."""
    r = manifest.get("drift", {}).get(name)
    if r is None:
        return None
    return {"reference": r["reference"], "passed": r["passed"], **{m: r["delta"][m] for m in HEADLINE_KEYS},
            "computed_in": _drift_compute(folder, r.get("report"))}


def _drift_compute(folder: Path | None, report: str | None) -> str | None:
    import contextlib

    if folder is None or not report:
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        runtimes = json.loads((folder / report / "drift.json").read_text()).get("runtimes") or {}
        return (runtimes.get("candidate") or {}).get("inference_precision")
    return None


# The two ways an artifact is used, and how each is ranked: (row key, larger is faster).
MODES = {"latency": ("p50_ms", False), "throughput": (f"batch{BATCH}_images_per_s", True)}


def fastest_within_budget(rows: list[dict[str, Any]], machine: dict[str, Any]) -> dict[str, Any]:
    """For the CPU these rows were timed on, the fastest artifact per mode (latency: the lowest batch-1 p50;
    throughput: the most batch-32 images/s) among those within their drift budget: an FP32 artifact (a reference:
    export.artifacts) always, another when its drift report passed, computing in the precision its drift was measured
    in (a bf16 or INT8 IR whose drift was measured on a CPU computing f32, or the other way round, does not count: its
    report says nothing of what ran here). {mode: {artifact, precision, compute, value} | None, "counted": [...],
    "not_counted": {artifact: why}, "cpu": ..., "cpu_flags": ...}."""
    from export.artifacts import BY_NAME

    counted, not_counted = [], {}
    for r in rows:
        name, d = r["artifact"], r.get("drift")
        a = BY_NAME.get(name)
        if "skipped" in r:
            not_counted[name] = "not timed"
        elif a is not None and a.reference is None:
            counted.append(r)
        elif d is None:
            not_counted[name] = "no drift report"
        elif not d["passed"]:
            not_counted[name] = f"past its drift budget vs {d['reference']}"
        elif d.get("computed_in") and r.get("compute") and d["computed_in"] != r["compute"]:
            not_counted[name] = f"its drift was measured computing in {d['computed_in']}, here it computes in {r['compute']}"
        else:
            counted.append(r)
    out: dict[str, Any] = {"cpu": machine.get("cpu"), "cpu_flags": machine.get("isa"),
                           "counted": [r["artifact"] for r in counted], "not_counted": not_counted}
    for mode, (key, larger) in MODES.items():
        timed = [r for r in counted if isinstance(r.get(key), (int, float))]
        best = (max if larger else min)(timed, key=lambda r: r[key]) if timed else None
        out[mode] = None if best is None else {"artifact": best["artifact"], "precision": best.get("precision"),
                                               "compute": best.get("compute"), key: best[key]}
    return out


def fastest_line(fastest: dict[str, Any]) -> str:
    """The table's closing line: what to deploy on this CPU, per mode."""
    def one(mode: str, what: str, unit: str) -> str:
        best = fastest.get(mode)
        if not best:
            return f"{mode} ({what}): none timed within budget"
        compute = f", {best['compute']} compute" if best.get("compute") else ""
        return f"{mode} ({what}) `{best['artifact']}` ({best['precision']}{compute}), {best[MODES[mode][0]]:{unit}}"

    text = (f"**Fastest within its drift budget on this CPU** ({fastest.get('cpu')}; {fastest.get('cpu_flags')}): "
            f"{one('latency', 'batch-1 p50', '.2f')} ms; {one('throughput', f'batch {BATCH}', '.0f')} img/s.")
    if fastest.get("not_counted"):
        text += " Not counted: " + "; ".join(f"`{n}` ({why})" for n, why in fastest["not_counted"].items()) + "."
    return text


def headline(info: dict[str, Any]) -> str:
    threads = f"{info['threads']} thread{'s' if info['threads'] != 1 else ''}"
    return f"{info['cores']}-core {info['cpu']}, {info['isa']}, {threads} ({info['system']})"


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Benchmark: every artifact of this export", "",
             f"Machine: {headline(result['machine'])}. Batch-1 latency over repeated calls on random input, batch "
             f"{result['batch']} throughput; {result['machine']['rounds']} round(s), each artifact in a fresh process "
             "every round: p50 is the lowest round's, p95 / p99 the median round's, throughput the best. Drift: "
             "candidate minus FP32 reference on the export's held-out drift scenes. OpenVINO rows name the precision "
             "its plugin computes in (FP16 weights run in bf16 or f32 on CPUs).", "",
             f"| artifact | precision | MiB | p50 ms | p95 ms | p99 ms | b{result['batch']} img/s | d accuracy | "
             "d macro mAP | d SSIM | drift gate |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    throughput = f"batch{result['batch']}_images_per_s"
    for r in result["rows"]:
        timing = (["skipped: " + r["skipped"], "", "", ""] if "skipped" in r else
                  [f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r[throughput]:.0f}"])
        d = r["drift"]
        drift = (["(reference)"] * 3 + [""]) if d is None else \
            [f"{d[m]:+.4f}" for m in HEADLINE_KEYS] + [f"{'ok' if d['passed'] else 'PAST BUDGET'} vs {d['reference']}"]
        precision = r["precision"] + (f" ({r['compute']} compute)" if r.get("compute") else "")
        lines.append(f"| {r['artifact']} | {precision} | {r['bytes'] / 2**20:.2f} | " + " | ".join(timing + drift) + " |")
    if result.get("fastest_within_budget"):
        lines += ["", fastest_line(result["fastest_within_budget"])]
    return "\n".join(lines) + "\n"


def register(folder: Path, names: tuple[str, ...] = ("benchmark.md", "benchmark.json"),
             summary: dict[str, Any] | None = None) -> None:
    """Add the benchmark files to the export's manifest (its file list is what the folder holds), and `summary`
    (run_benchmark's) as its benchmark section, as an export with --benchmark records it."""
    from dualpath.files import file_sha256, read_json
    from export.atomic import write_json

    manifest = read_json(folder / "manifest.json", ValueError, missing="", corrupt="manifest.json is corrupt ({error})")
    if summary is not None:
        manifest["benchmark"] = summary
    for name in names:
        manifest["files"][name] = {"sha256": file_sha256(folder / name), "bytes": (folder / name).stat().st_size}
    write_json(folder / "manifest.json", manifest)


def main(argv: list[str] | None = None) -> int:
    from export.config import BenchConfig

    p = argparse.ArgumentParser(prog="python -m export.benchmark", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, required=True, help="folder written by python -m export")
    p.add_argument("--threads", type=int, help=f"inference threads (default {default(BenchConfig, 'threads')})")
    p.add_argument("--iters", type=int, help=f"batch-1 calls per artifact (default {default(BenchConfig, 'iters')})")
    p.add_argument("--rounds", type=int, help="rounds over all artifacts, each in a fresh process (default "
                   f"{default(BenchConfig, 'rounds')})")
    p.add_argument("--fastest", choices=tuple(MODES),
                   help="time nothing: print the path of the artifact the export's benchmark named fastest within its "
                        "drift budget in this mode (for scripts: python -m runtime --model $(...))")
    p.add_argument("--only", help=argparse.SUPPRESS)  # time one file in this process; its figures as a JSON line
    args = p.parse_args(argv)
    if args.fastest:
        return print_fastest(args.export, args.fastest)
    try:
        bench = fill(BenchConfig, args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        if args.only:
            print(json.dumps(time_one(args.export / args.only, bench.threads, bench.iters)))
            return exitcodes.OK
        register(args.export, summary=run_benchmark(args.export, read_manifest(args.export), bench))
    except (ValueError, OSError, RuntimeError) as e:  # BackendError is a RuntimeError
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(f"saved {args.export / 'benchmark.md'} and benchmark.json")
    return exitcodes.OK


def read_manifest(folder: Path) -> dict[str, Any]:
    """An export folder's manifest.json; ValueError saying what to do when it is missing or corrupt."""
    from dualpath.files import read_json

    return read_json(folder / "manifest.json", ValueError,
                     missing=f"no manifest.json in {folder}: export a checkpoint first (python -m export)",
                     corrupt=f"{folder / 'manifest.json'} is not valid JSON ({{error}}); export again")


def print_fastest(folder: Path, mode: str) -> int:
    """Print the path of the fastest artifact within budget in `mode`, as the manifest's benchmark section names it;
    exit 2 (one line) when the export has no benchmark or named none."""
    try:
        manifest = read_manifest(folder)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    name = (manifest.get("benchmark") or {}).get("fastest_within_budget", {}).get(mode)
    if not isinstance(name, str) or not (folder / name).is_file():
        print(f"error: {folder} names no fastest artifact for {mode}: time it first (python -m export.benchmark "
              f"--export {folder})", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(folder / name)
    return exitcodes.OK


if __name__ == "__main__":
    raise SystemExit(main())
