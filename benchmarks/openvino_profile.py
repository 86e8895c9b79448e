"""Where OpenVINO spends a batch-1 inference: its per-layer performance counters for the FP32 and INT8 IR of an
export, summed by layer type and kernel (e.g. Convolution jit_avx2_I8) and by model part (the exported graph's
module scopes: encoder = the encoder's DenseNet, features = the classifier path's DenseNet, decoder, reconstruction =
the CBAM head, head = the classifier). It explains the INT8-vs-FP32 ratio that benchmarks.inference measures.

    python -m benchmarks.openvino_profile --export runs/x/export [--threads 2] [--calls 100]
                                          [--out benchmarks/results/openvino_profile.json]

The counters add profiling overhead, so their sums exceed the wall latency; compare the two models' rows, not the
totals with inference.py's.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dualpath.machine import describe, headline

MODELS = {"fp32": "model_fp32.xml", "int8": "model_int8.xml"}


def part_of(layer: str) -> str:
    """'/model/encoder/denseblock1/...' -> 'encoder'; ops outside the model's modules -> 'other'."""
    parts = layer.split("/")
    return parts[2] if len(parts) > 3 and parts[1] == "model" else "other"


def profile(xml: Path, threads: int, calls: int, warmup: int = 20) -> dict:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(xml))
    shape = model.inputs[0].get_partial_shape()
    shape[0] = 1  # batch 1, the rest as exported (static 3 x 64 x 64)
    model.reshape({model.inputs[0]: shape})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                 "PERF_COUNT": True})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).normal(size=tuple(compiled.inputs[0].get_shape())).astype(np.float32)
    for _ in range(warmup):
        request.infer({0: x})
    kernels: dict[str, float] = defaultdict(float)
    parts: dict[str, float] = defaultdict(float)
    for _ in range(calls):
        request.infer({0: x})
        for info in request.profiling_info:
            ms = info.real_time.total_seconds() * 1000.0 / calls
            kernels[f"{info.node_type} {info.exec_type}"] += ms
            parts[part_of(info.node_name)] += ms
    return {"total_ms": sum(kernels.values()),
            "by_kernel_ms": dict(sorted(kernels.items(), key=lambda kv: -kv[1])),
            "by_part_ms": dict(sorted(parts.items(), key=lambda kv: -kv[1]))}


def table(results: dict[str, dict], top: int = 10) -> str:
    lines = []
    for name, r in results.items():
        lines.append(f"{name}: {r['total_ms']:.2f} ms in all layers")
        lines += [f"  {k:<40}{v:>8.2f}" for k, v in list(r["by_kernel_ms"].items())[:top] if v >= 0.005]
        lines.append("  by part: " + ", ".join(f"{k} {v:.2f}" for k, v in r["by_part_ms"].items() if v >= 0.005))
    if {"fp32", "int8"} <= set(results):
        lines.append(f"INT8 vs FP32, sum of layer times: {results['fp32']['total_ms'] / results['int8']['total_ms']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, required=True, help="folder written by python -m export --int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=100, help="profiled batch-1 calls per model")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/openvino_profile.json"))
    args = p.parse_args(argv)
    found = {name: args.export / f for name, f in MODELS.items() if (args.export / f).is_file()}
    if not found:
        p.error(f"no OpenVINO model ({', '.join(MODELS.values())}) in {args.export}: "
                "export with python -m export --int8 --backends onnx,openvino")
    results = {name: profile(path, args.threads, args.calls) for name, path in found.items()}
    info = describe() | {"threads": args.threads}
    print(f"OpenVINO per-layer profile, batch 1, {args.export}, {headline(info)}")
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "export": str(args.export), "calls": args.calls,
                                    "models": results}, indent=1) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
