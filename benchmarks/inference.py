"""Inference speed of the dual-path model: PyTorch eager FP32, ONNX Runtime FP32 / INT8 (u8, s8), OpenVINO FP32 /
INT8 (and TensorRT where an engine exists), in one run on one machine.

    python -m benchmarks.inference --export runs/x/export [--checkpoint runs/x/best.pt] [--threads 2] [--rounds 3]
                                   [--out benchmarks/results/inference.json]

Batch 1: latency p50 / p95 over --iters calls after --warmup calls; batch 32: throughput in images/s. This shared VM
has slow spells lasting minutes, so every runtime is measured in --rounds rounds, each runtime of a round in its own
fresh process (no other runtime's thread pool spinning beside it): p50 is the lowest round's (and within a round the
lowest of 3 block medians), and the INT8-vs-FP32 ratio is also given per round, from measurements a few seconds apart,
and from OpenVINO FP32 and INT8 alternating blocks of calls in one process (the steadiest measure here).
Targets on a 2-core CPU (docs/design.md): OpenVINO INT8 >= 1.5x faster than OpenVINO FP32 and >= 6x faster than
PyTorch eager FP32 at batch 1. The machine is named in the table and the JSON: figures without it mean nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import run_module
from dualpath.machine import describe, headline

# name -> (file in the export folder, backend)
ARTIFACTS = {
    "onnxruntime fp32": ("model_fp32.onnx", "onnxruntime"),
    "onnxruntime int8 u8": ("model_int8_u8.onnx", "onnxruntime"),
    "onnxruntime int8 s8": ("model_int8_s8.onnx", "onnxruntime"),
    "openvino fp32": ("model_fp32.xml", "openvino"),
    "openvino int8": ("model_int8.xml", "openvino"),
    "tensorrt int8": ("model_int8.engine", "tensorrt"),
}


def time_calls(fn, x: np.ndarray, warmup: int, iters: int) -> np.ndarray:
    for _ in range(warmup):
        fn(x)
    times = np.empty(iters)
    for i in range(iters):
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return times


def measure(fn, warmup: int, iters: int, batch: int, blocks: int = 3) -> dict[str, float]:
    """Batch-1 latency in `blocks` blocks of calls: p50 is the lowest block median (a shared VM has slow spells that
    would otherwise land on whichever runtime ran during them), p95 over every call; batch throughput likewise."""
    x1 = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    xb = np.random.default_rng(1).normal(size=(batch, 3, 64, 64)).astype(np.float32)
    lat = [time_calls(fn, x1, warmup if i == 0 else 2, max(1, iters // blocks)) * 1000.0 for i in range(blocks)]
    thr = [time_calls(fn, xb, max(1, warmup // 5) if i == 0 else 1, max(2, iters // (10 * blocks)))
           for i in range(blocks)]
    return {"p50_ms": float(min(np.median(b) for b in lat)), "p95_ms": float(np.percentile(np.concatenate(lat), 95)),
            f"batch{batch}_images_per_s": float(batch / min(np.median(b) for b in thr))}


def torch_runner(checkpoint: Path, threads: int):
    import torch

    from export.onnx_fp32 import deployed
    from train.checkpoint import load_model

    torch.set_num_threads(threads)
    model = deployed(load_model(checkpoint)[0])

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    return run


def backend_runner(path: Path, backend: str, threads: int):
    from runtime.backends import load_backend

    be = load_backend(path, backend, threads=threads) if backend != "tensorrt" else load_backend(path, backend)
    return lambda x: be.infer({"image": x})


def table(rows: list[dict], machine: str, model: str = "dual-path model") -> str:
    base = {r["name"]: r for r in rows}
    torch_p50 = base.get("pytorch eager fp32", {}).get("p50_ms")
    lines = [f"inference, {model}, {machine}",
             f"{'runtime':<22}{'p50 ms':>9}{'p95 ms':>9}{'b32 img/s':>11}{'vs torch':>10}{'MiB':>7}"]
    for r in rows:
        speedup = f"{torch_p50 / r['p50_ms']:.1f}x" if torch_p50 else ""
        size = f"{r['bytes'] / 2**20:.2f}" if r.get("bytes") else ""
        lines.append(f"{r['name']:<22}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['batch32_images_per_s']:>11.0f}"
                     f"{speedup:>10}{size:>7}")
    if "openvino int8" in base and "openvino fp32" in base:
        lines.append(f"OpenVINO INT8 vs FP32 at batch 1: {base['openvino fp32']['p50_ms'] / base['openvino int8']['p50_ms']:.2f}x "
                     "(target >= 1.5x)")
    if "openvino int8" in base and torch_p50:
        lines.append(f"OpenVINO INT8 vs PyTorch eager FP32 at batch 1: {torch_p50 / base['openvino int8']['p50_ms']:.2f}x "
                     "(target >= 6x)")
    return "\n".join(lines)


def runtimes(export: Path, checkpoint: Path) -> dict[str, dict]:
    """name -> {file, bytes} of every runtime this export (and checkpoint) can be timed with."""
    found = {}
    if checkpoint.is_file():
        found["pytorch eager fp32"] = {"bytes": checkpoint.stat().st_size}
    for name, (file, _) in ARTIFACTS.items():
        path = export / file
        if path.is_file():
            size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
            found[name] = {"file": file, "bytes": size}
    return found


def measure_one(name: str, export: Path, checkpoint: Path, threads: int, warmup: int, iters: int) -> dict[str, float]:
    if name == "pytorch eager fp32":
        return measure(torch_runner(checkpoint, threads), warmup, max(20, iters // 4), 32)
    file, backend = ARTIFACTS[name]
    return measure(backend_runner(export / file, backend, threads), warmup, iters, 32)


def measure_in_subprocess(name: str, args, checkpoint: Path) -> dict[str, float]:
    done = run_module("benchmarks.inference", [
        "--export", str(args.export), "--checkpoint", str(checkpoint), "--threads", str(args.threads),
        "--warmup", str(args.warmup), "--iters", str(args.iters), "--only", name])
    if done.returncode != 0:
        raise RuntimeError(f"timing {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def combine(name: str, info: dict, rounds: list[dict[str, float]]) -> dict:
    """One row from a runtime's rounds: the lowest round's p50 and the best throughput; every round kept."""
    return {"name": name, **info, "p50_ms": min(r["p50_ms"] for r in rounds),
            "p95_ms": float(np.median([r["p95_ms"] for r in rounds])),
            "batch32_images_per_s": max(r["batch32_images_per_s"] for r in rounds),
            "rounds_p50_ms": [round(r["p50_ms"], 3) for r in rounds]}


def openvino_pair(export: Path, threads: int, blocks: int = 40, calls: int = 20) -> dict | None:
    """OpenVINO FP32 and INT8 in one process, alternating blocks of batch-1 calls: each block pair runs within a
    second, so the VM's slow spells hit both sides; the ratio of their medians is the steadiest measure of the 1.5x
    target this machine gives."""
    fp32, int8 = export / ARTIFACTS["openvino fp32"][0], export / ARTIFACTS["openvino int8"][0]
    if not (fp32.is_file() and int8.is_file()):
        return None
    from runtime.backends import load_backend

    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    with load_backend(fp32, "openvino", threads=threads) as a, load_backend(int8, "openvino", threads=threads) as b:
        runs = {"fp32": lambda v: a.infer({"image": v}), "int8": lambda v: b.infer({"image": v})}
        medians: dict[str, list[float]] = {"fp32": [], "int8": []}
        for block in range(blocks):
            for name, fn in runs.items():
                times = time_calls(fn, x, calls if block == 0 else 0, calls)  # the first block warms up first
                medians[name].append(1000.0 * float(np.median(times)))
    ratio = np.array(medians["fp32"]) / np.array(medians["int8"])
    return {"blocks": blocks, "calls_per_block": calls, "fp32_block_median_ms": float(np.median(medians["fp32"])),
            "int8_block_median_ms": float(np.median(medians["int8"])), "ratio_median": float(np.median(ratio)),
            "ratio_q25": float(np.quantile(ratio, 0.25)), "ratio_q75": float(np.quantile(ratio, 0.75))}


def paired_ratios(rows: list[dict]) -> dict[str, list[float]]:
    """Per-round ratios of the targets (measured within seconds of each other, so a slow spell hits both sides)."""
    by = {r["name"]: r["rounds_p50_ms"] for r in rows}
    out = {}
    if "openvino int8" in by and "openvino fp32" in by:
        out["openvino_int8_vs_fp32"] = [round(f / i, 3) for f, i in zip(by["openvino fp32"], by["openvino int8"])]
    if "openvino int8" in by and "pytorch eager fp32" in by:
        out["openvino_int8_vs_torch"] = [round(t / i, 3) for t, i in zip(by["pytorch eager fp32"], by["openvino int8"])]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, required=True, help="folder written by python -m export --int8")
    p.add_argument("--checkpoint", type=Path, help="for the PyTorch eager row (default: the manifest's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3, help="rounds over all runtimes, each in a fresh process")
    p.add_argument("--only", help=argparse.SUPPRESS)  # one runtime in this process, its figures as a JSON line
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/inference.json"))
    args = p.parse_args(argv)
    if not (args.export / "manifest.json").is_file():
        p.error(f"no manifest.json in {args.export}: export a checkpoint first (python -m export --int8)")
    manifest = json.loads((args.export / "manifest.json").read_text())
    checkpoint = args.checkpoint or Path(manifest["checkpoint"]["path"])
    if args.only:
        print(json.dumps(measure_one(args.only, args.export, checkpoint, args.threads, args.warmup, args.iters)))
        return 0
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    found = runtimes(args.export, checkpoint)
    results: dict[str, list] = {name: [] for name in found}
    for r in range(args.rounds):
        for name in found:
            print(f"round {r + 1}/{args.rounds}: {name}", file=sys.stderr, flush=True)
            results[name].append(measure_in_subprocess(name, args, checkpoint))
    rows = [combine(name, found[name], results[name]) for name in found]
    info = describe() | {"threads": args.threads, "rounds": args.rounds}
    mc = manifest["checkpoint"].get("model_config") or {}
    ratios = paired_ratios(rows)
    print("OpenVINO FP32 / INT8 paired in one process", file=sys.stderr, flush=True)
    pair = openvino_pair(args.export, args.threads)
    print(table(rows, headline(info), f"{mc.get('arch', 'dualpath')} ({mc.get('backbone', '?')})"))
    for key, values in ratios.items():
        print(f"per round, {key.replace('_', ' ')}: " + ", ".join(f"{v:.2f}x" for v in values))
    if pair:
        print(f"OpenVINO INT8 vs FP32, {pair['blocks']} alternating blocks in one process: median {pair['ratio_median']:.2f}x "
              f"(quartiles {pair['ratio_q25']:.2f}x-{pair['ratio_q75']:.2f}x; FP32 {pair['fp32_block_median_ms']:.2f} ms, "
              f"INT8 {pair['int8_block_median_ms']:.2f} ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "model": manifest["checkpoint"].get("model_config"),
                                    "rows": rows, "paired_ratios": ratios,
                                    "openvino_pair": pair}, indent=1) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
