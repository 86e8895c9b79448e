"""Training throughput (images/s of one optimisation step) for each model, batch size and execution setting.

The step is the trainer's own (train.loop.train_step): uint8 scenes resident on the device, a batch indexed there,
normalised inside the step, forward + multitask loss + backward + Adam, no host sync. Timed over --steps steps
after --warmup steps (compile happens during warm-up).

    python -m benchmarks.train_speed                       # CPU: quick (densenet_small, 2 timed steps)
    python -m benchmarks.train_speed --out speed.json      # + JSON; on a GPU machine also bf16/fp32 x layout x compile
    python -m benchmarks.train_speed --backbone densenet121 --models dualpath --batch-sizes 64 256 --steps 20
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dualpath import contract, exitcodes
from dualpath.architectures import ARCHITECTURES
from dualpath.model import ModelConfig, build_model
from train.data import DeviceData, Normalizer
from train.loop import train_step
from train.losses import MultitaskLoss


@dataclass(frozen=True)
class Setting:
    device: str
    precision: str  # "fp32" | "bf16"
    channels_last: bool
    compile: bool


@dataclass
class Result:
    model: str
    backbone: str
    batch: int
    device: str
    precision: str
    channels_last: bool
    compile: bool
    images_per_s: float | None
    ms_per_step: float | None
    error: str | None = None


def settings(device: str, compile_choice: str, cpu_bf16: bool) -> list[Setting]:
    compiles = {"off": [False], "on": [True], "both": [False, True]}[compile_choice]
    precisions = ["fp32", "bf16"] if device == "cuda" or cpu_bf16 else ["fp32"]
    return [Setting(device, p, cl, c) for p, cl, c in itertools.product(precisions, (False, True), compiles)]


def synthetic_data(n: int, device: torch.device) -> DeviceData:
    rng = np.random.default_rng(0)
    size = (n, contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3)
    labels = np.zeros((n, contract.NUM_CLASSES), np.uint8)
    labels[np.arange(n), rng.integers(0, contract.NUM_CLASSES, n)] = 1
    to = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    return DeviceData(to(rng.integers(0, 256, size, np.uint8)), to(rng.integers(0, 256, size, np.uint8)), to(labels))


def measure(arch: str, backbone: str, batch: int, s: Setting, warmup: int, steps: int) -> Result:
    device = torch.device(s.device)
    base = dict(model=arch, backbone=backbone, batch=batch, device=s.device, precision=s.precision,
                channels_last=s.channels_last, compile=s.compile)
    try:
        torch.manual_seed(0)
        model = build_model(ModelConfig(arch=arch, backbone=backbone)).to(device).train()
        if s.channels_last:
            model.to(memory_format=torch.channels_last)
        step_model = torch.compile(model) if s.compile else model
        criterion = MultitaskLoss(cls_loss="asl")
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        data = synthetic_data(max(2 * batch, 512), device)
        norm = Normalizer(device, s.channels_last)
        gen = torch.Generator().manual_seed(0)
        batches = [torch.randperm(len(data), generator=gen)[:batch].to(device) for _ in range(warmup + steps)]
        for idx in batches[:warmup]:
            train_step(step_model, criterion, optimizer, data, idx, norm, s.precision == "bf16")
        _sync(device)
        t0 = time.perf_counter()
        for idx in batches[warmup:]:
            train_step(step_model, criterion, optimizer, data, idx, norm, s.precision == "bf16")
        _sync(device)
        seconds = time.perf_counter() - t0
    except (RuntimeError, torch.OutOfMemoryError) as err:  # OOM at batch 256 on small GPUs, compile failures
        return Result(**base, images_per_s=None, ms_per_step=None, error=f"{type(err).__name__}: {str(err)[:200]}")
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return Result(**base, images_per_s=round(steps * batch / seconds, 1), ms_per_step=round(1000 * seconds / steps, 2))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def table(results: list[Result]) -> str:
    head = f"{'model':<9} {'backbone':<15} {'batch':>5} {'device':<6} {'prec':<5} {'layout':<8} {'compile':<7} {'img/s':>9} {'ms/step':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        layout = "NHWC" if r.channels_last else "NCHW"
        speed = f"{r.images_per_s:>9.1f} {r.ms_per_step:>9.1f}" if r.error is None else f"  failed: {r.error[:60]}"
        lines.append(f"{r.model:<9} {r.backbone:<15} {r.batch:>5} {r.device:<6} {r.precision:<5} {layout:<8} "
                     f"{'on' if r.compile else 'off':<7} {speed}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--backbone", help="default: densenet121 with a GPU, densenet_small on the CPU (quick)")
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], help="default: cpu, and cuda when present")
    parser.add_argument("--steps", type=int, help="timed steps (default: 2 on the CPU, 20 on a GPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 1 on the CPU, 5 on a GPU, 10 with compile)")
    parser.add_argument("--compile", choices=["off", "on", "both"],
                        help="torch.compile variants (default: both on a GPU, off on the CPU)")
    parser.add_argument("--cpu-bf16", action="store_true", help="also bf16 autocast on the CPU (slow on most CPUs)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        print("--devices cuda: torch sees no CUDA GPU", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if "cuda" in devices:
        torch.backends.cudnn.benchmark = True
    results = []
    for device in devices:
        gpu = device == "cuda"
        backbone = args.backbone or ("densenet121" if gpu else "densenet_small")
        steps = args.steps or (20 if gpu else 2)
        for arch, batch, s in itertools.product(args.models, args.batch_sizes,
                                                settings(device, args.compile or ("both" if gpu else "off"), args.cpu_bf16)):
            warmup = args.warmup if args.warmup is not None else (10 if s.compile else 5) if gpu else 1
            r = measure(arch, backbone, batch, s, warmup, steps)
            print(table([r]).splitlines()[-1], flush=True)
            results.append(r)
    print()
    print(table(results))
    if args.out:
        env = {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        }
        args.out.write_text(json.dumps({"environment": env, "results": [asdict(r) for r in results]}, indent=1))
        print(f"\nwrote {args.out}")
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
