"""Where a trained model's activations have outliers that a per-tensor INT8 scale cannot hold: for every conv and
linear layer, the largest |input| against its 99.9th percentile on the same scenes, for one or more checkpoints.

    python -m benchmarks.activation_outliers --run runs/demo --run runs/other [--n 256]
        [--out benchmarks/results/activation_outliers.json]

INT8 calibration sets one scale per tensor from the calibration scenes' range: an input whose maximum is 30x its
99.9th percentile leaves the bulk of its values a few of the 255 steps. The ratio max / p99.9 per layer (the input of
each quantised layer, as the QDQ export quantises it) shows which layers those are; with two runs, the table sorts the
layers by how much larger the ratio is in the last run than in the first. Scenes: the pretraining stream's held-out
chunk (seed 10000000), which no run trains on.
Exit codes: 0 the table was written, 2 a run folder that cannot be read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import save_results
from dualpath import exitcodes
from dualpath.machine import describe, headline

SAMPLE = 200_000  # values per tensor the percentile is estimated from


def input_ranges(model, images) -> dict[str, dict]:
    """{layer: {"max": .., "p999": ..}} of |input| of every Conv2d / Linear of `model` on `images` (N, H, W, 3 uint8)."""
    import torch

    from train.data import Normalizer

    gen = torch.Generator().manual_seed(0)
    stats: dict[str, dict] = {}

    def record(name):
        def hook(_module, inputs, _output):
            a = inputs[0].detach().float().abs().flatten()
            sample = a[torch.randperm(len(a), generator=gen)[:SAMPLE]]
            stats[name] = {"max": round(a.max().item(), 4), "p999": round(torch.quantile(sample, 0.999).item(), 4)}
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(Normalizer(torch.device("cpu"), channels_last=False).inputs(torch.from_numpy(images)))
    finally:
        for h in hooks:
            h.remove()
    return stats


def ratio(s: dict) -> float:
    return s["max"] / s["p999"] if s["p999"] > 0 else float("inf")


def table(runs: list[str], stats: list[dict], top: int) -> str:
    names = list(stats[0])
    if len(stats) > 1:
        names.sort(key=lambda k: ratio(stats[-1][k]) / ratio(stats[0][k]), reverse=True)
    else:
        names.sort(key=lambda k: ratio(stats[0][k]), reverse=True)
    head = "| layer | " + " | ".join(f"{r}: max / p99.9 (ratio)" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for k in names[:top]:
        lines.append(f"| {k} | " + " | ".join(f"{s[k]['max']:.2f} / {s[k]['p999']:.2f} ({ratio(s[k]):.1f})"
                                             for s in stats) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.activation_outliers",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="a training run folder (its best.pt) or a checkpoint file; repeat to compare")
    parser.add_argument("--n", type=int, default=256, help="scenes (default 256)")
    parser.add_argument("--top", type=int, default=15, help="layers shown in the table (all go in the JSON)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/activation_outliers.json"))
    args = parser.parse_args(argv)
    if args.n < 1:
        print(f"error: --n must be >= 1, got {args.n}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    paths = [r / "best.pt" if r.is_dir() else r for r in args.run]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"error: {missing[0]} does not exist: pass a training run folder (with best.pt) or a checkpoint",
              file=sys.stderr)
        return exitcodes.BAD_INPUT

    import numpy as np
    import torch

    from train.checkpoint import load_model
    from train.pretrain_scenes import render_images
    from train.pretrain_stream import chunk_seed

    torch.set_num_threads(args.threads)
    images = np.ascontiguousarray(render_images(chunk_seed(0), 0, args.n)["noisy"])
    stats = []
    for path in paths:
        try:
            model, _ = load_model(path)
        except (ValueError, OSError) as err:
            print(f"error: cannot load {path}: {err}", file=sys.stderr)
            return exitcodes.BAD_INPUT
        stats.append(input_ranges(model, images))
    if len({tuple(s) for s in stats}) != 1:
        print("error: the checkpoints are of different architectures (their layers differ): compare runs of one "
              "model", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(f"{args.n} scenes of seed {chunk_seed(0)}; {headline(describe())}")
    print(table([str(r) for r in args.run], stats, args.top))
    return save_results(args.out, {"scenes": {"seed": chunk_seed(0), "n": args.n}, "machine": describe(),
                                   "runs": [str(r) for r in args.run], "layers": stats})


if __name__ == "__main__":
    sys.exit(main())
