"""Inference speed of the dual-path model: PyTorch eager FP32, ONNX Runtime FP32 / INT8 (u8, s8), OpenVINO FP32 /
INT8 (and TensorRT where an engine exists), in one run on one machine.

    python benchmarks/inference.py --export runs/x/export [--checkpoint runs/x/best.pt] [--threads 2]
                                   [--out benchmarks/results/inference.json]

Batch 1: latency p50 (the lowest of 3 block medians) / p95 over --iters calls after --warmup calls. Batch 32: throughput in images/s.
Targets on a 2-core CPU (design.md): OpenVINO INT8 >= 1.5x faster than OpenVINO FP32 and >= 6x faster than
PyTorch eager FP32 at batch 1. The machine is named in the table and the JSON: figures without it mean nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe, headline  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, required=True, help="folder written by python -m export --int8")
    p.add_argument("--checkpoint", type=Path, help="for the PyTorch eager row (default: the manifest's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/inference.json"))
    args = p.parse_args(argv)
    manifest = json.loads((args.export / "manifest.json").read_text())
    checkpoint = args.checkpoint or Path(manifest["checkpoint"]["path"])
    rows = []
    if checkpoint.is_file():
        rows.append({"name": "pytorch eager fp32", "bytes": checkpoint.stat().st_size,
                     **measure(torch_runner(checkpoint, args.threads), args.warmup, max(20, args.iters // 4), 32)})
    for name, (file, backend) in ARTIFACTS.items():
        path = args.export / file
        if not path.is_file():
            continue
        size = path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)
        rows.append({"name": name, "file": file, "bytes": size,
                     **measure(backend_runner(path, backend, args.threads), args.warmup, args.iters, 32)})
    info = describe() | {"threads": args.threads}
    mc = manifest["checkpoint"].get("model_config") or {}
    print(table(rows, headline(info), f"{mc.get('arch', 'dualpath')} ({mc.get('backbone', '?')})"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "model": manifest["checkpoint"].get("model_config"),
                                    "rows": rows}, indent=1) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
