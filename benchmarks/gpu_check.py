"""`make gpu-check`: one run, sized for ~10 minutes of one H100/H200, that nothing in it downloads.

1. Training speed of the dual-path model and both baselines (benchmarks.train_speed's step): fp32 vs bf16,
   NCHW vs channels_last, torch.compile off/on; images/s and peak GPU memory.
2. A time-boxed DenseNet-121 scene pretraining (`python -m train pretrain`), saved in fp16 (must stay < 16 MiB).
3. The paper's four rows (`python -m train compare --preset paper`) from those weights, one fold, epochs scaled down,
   each evaluated on the held-out scenes at every degradation severity (the robustness study, issue 20).

Small results (JSON + Markdown, the fp16 weights and their card, the comparison) go to --out; checkpoints and
scenes to --work. --tiny runs the same at test sizes on the CPU (tests/train/test_gpu_check.py).
Exit codes: 0 done, 1 a stage failed or the weights are too large, 2 bad input (no GPU without --tiny).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dualpath import exitcodes

MAX_WEIGHTS_MIB = 16
SEVERITIES = "0,1,2,3"  # the robustness study's degradation levels (make robustness uses the same)


@dataclass(frozen=True)
class Sizes:
    device: str
    backbone: str
    speed_batch: int
    speed_warmup: int
    speed_steps: int
    speed_compile: bool  # also the torch.compile rows
    pretrain: list[str]  # sizing flags of `python -m train pretrain`
    compare: list[str]  # preset and sizing flags of `python -m train compare`


def sizes(tiny: bool, pretrain_minutes: float, compare_epochs: int, workers: int) -> Sizes:
    if tiny:
        return Sizes("cpu", "densenet_tiny", 4, 0, 1, False,
                     ["--scenes", "32", "--chunk", "16", "--held-out", "16", "--batch-size", "8", "--threads", "1"],
                     ["--preset", "tiny", "--n-scenes", "60", "--epochs", "2", "--phase1-epochs", "1",
                      "--threads", "1"])
    phase1 = max(1, compare_epochs // 3)  # the paper's 30 of 100
    return Sizes("cuda", "densenet121", 256, 5, 20, True,
                 ["--budget-minutes", str(pretrain_minutes), "--chunk", "5000", "--held-out", "2000",
                  "--batch-size", "256", "--lr", "2e-3", "--workers", str(workers)],
                 ["--preset", "paper", "--epochs", str(compare_epochs), "--phase1-epochs", str(phase1)])


# --- 1. speed -----------------------------------------------------------------------------------------------------


def speed(s: Sizes) -> list[dict]:
    import torch
    from benchmarks import train_speed

    from dualpath.architectures import ARCHITECTURES

    settings = [train_speed.Setting(s.device, p, cl, False) for p in ("fp32", "bf16") for cl in (False, True)]
    if s.speed_compile:
        settings.append(train_speed.Setting(s.device, "bf16", True, True))  # compiling takes ~1 min a model
    rows = []
    for arch in ARCHITECTURES:
        for setting in settings:
            if s.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            warmup = s.speed_warmup * (2 if setting.compile else 1)
            r = asdict(train_speed.measure(arch, s.backbone, s.speed_batch, setting, warmup, s.speed_steps))
            r["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20) if s.device == "cuda" else None
            print(train_speed.table([train_speed.Result(**{k: v for k, v in r.items() if k != "peak_mib"})])
                  .splitlines()[-1], f"{r['peak_mib']} MiB", flush=True)
            rows.append(r)
    return rows


# --- 2. pretraining -----------------------------------------------------------------------------------------------


def pretrain(s: Sizes, out: Path, work: Path) -> dict:
    from train.pretrain import main as pretrain_main

    run = work / "pretrain"
    shutil.rmtree(run, ignore_errors=True)  # a fresh, time-boxed run each time
    rc = pretrain_main(["--backbone", s.backbone, "--half", "--device", s.device, "--quiet", "--out", str(run),
                        *s.pretrain])
    if rc != 0:
        return {"ok": False, "error": f"python -m train pretrain exited {rc}"}
    (out / "pretrain").mkdir(parents=True, exist_ok=True)
    for name in ("backbone.pth", "backbone.json"):
        shutil.copy2(run / name, out / "pretrain" / name)
    card = json.loads((run / "backbone.json").read_text())
    mib = (out / "pretrain/backbone.pth").stat().st_size / 2**20
    keep = ("backbone", "stem", "dtype", "scenes_seen", "seed_range", "held_out", "wall_s", "waited_for_scenes_s",
            "weights_sha256")
    return {"ok": mib < MAX_WEIGHTS_MIB, "size_mib": round(mib, 2), "weights": "pretrain/backbone.pth",
            **{k: card[k] for k in keep}}


# --- 3. the four rows ---------------------------------------------------------------------------------------------


def compare(s: Sizes, out: Path, work: Path, workers: int) -> dict:
    from train.compare import main as compare_main

    weights = out / "pretrain" / "backbone.pth"
    run = work / "compare"
    shutil.rmtree(run, ignore_errors=True)
    rc = compare_main([*s.compare, "--folds", "1", "--weights", str(weights), "--device", s.device, "--quiet",
                       "--data-root", str(work / "data"), "--workers", str(workers), "--out", str(run),
                       "--severities", SEVERITIES])
    if rc != 0:
        return {"ok": False, "error": f"python -m train compare exited {rc}"}
    (out / "compare").mkdir(parents=True, exist_ok=True)
    for name in ("comparison.md", "comparison.json", "table_iv.png", "robustness.png"):
        if (run / name).is_file():
            shutil.copy2(run / name, out / "compare" / name)
    comparison = json.loads((run / "comparison.json").read_text())
    robustness = comparison.pop("robustness", None)
    return {"ok": True, "flags": [*s.compare, "--severities", SEVERITIES], "rows": comparison, "robustness": robustness}


# --- report -------------------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# GPU check: {m.get('gpu') or 'CPU (--tiny)'}", "",
             f"torch {m['torch']}, {m['cores']}-core {m['cpu']}; {result['wall_s']:.0f} s in all.", "",
             "## Training speed (one optimisation step)", "",
             "| model | batch | precision | layout | compile | images/s | ms/step | peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["speed"]:
        speed = f"{r['images_per_s']} | {r['ms_per_step']}" if r["error"] is None else f"failed: {r['error'][:60]} |"
        lines.append(f"| {r['model']} | {r['batch']} | {r['precision']} | {'NHWC' if r['channels_last'] else 'NCHW'} "
                     f"| {'on' if r['compile'] else 'off'} | {speed} | {r['peak_mib'] or 'n/a'} |")
    p = result["pretrain"]
    lines += ["", "## Scene pretraining", ""]
    if p.get("error"):
        lines.append(f"failed: {p['error']}")
    else:
        held = p["held_out"]["noisy"]
        lines.append(f"{p['backbone']} ({p['stem']} stem), {p['scenes_seen']} scenes in {p['wall_s']} s; held-out "
                     f"macro mAP {held['macro_map']}, accuracy {held['accuracy']}; {p['dtype']} file {p['size_mib']} "
                     f"MiB (limit {MAX_WEIGHTS_MIB}).")
    c = result["compare"]
    lines += ["", "## The four rows from those weights (one fold)", ""]
    lines.append(f"failed: {c['error']}" if c.get("error") else "See compare/comparison.md; flags: "
                 + " ".join(c["flags"]))
    return "\n".join(lines) + "\n"


def machine() -> dict:
    import torch
    from dualpath.machine import describe

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {**describe(), "torch": torch.__version__, "gpu": gpu}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_check"), help="small results")
    parser.add_argument("--work", type=Path, default=Path("runs/gpu-check"), help="checkpoints and scenes")
    parser.add_argument("--tiny", action="store_true", help="test sizes on the CPU")
    parser.add_argument("--pretrain-minutes", type=float, default=2.5, help="DenseNet-121 pretraining time box")
    parser.add_argument("--compare-epochs", type=int, default=6, help="epochs of each of the four rows")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2), help="scene renderers")
    return parser


def main(argv: list[str] | None = None) -> int:
    import torch

    args = build_parser().parse_args(argv)
    if not args.tiny and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU; run it on a GPU machine, or pass --tiny for the CPU test sizes",
              file=sys.stderr)
        return exitcodes.BAD_INPUT
    if args.pretrain_minutes <= 0 or args.compare_epochs < 1 or args.workers < 1:
        print("gpu_check: --pretrain-minutes, --compare-epochs and --workers must be positive", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if not args.tiny:
        torch.backends.cudnn.benchmark = True
    s = sizes(args.tiny, args.pretrain_minutes, args.compare_epochs, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = {"machine": machine(), "tiny": args.tiny, "speed": speed(s), "pretrain": pretrain(s, args.out, args.work)}
    ok = result["pretrain"]["ok"]
    result["compare"] = compare(s, args.out, args.work, args.workers) if "error" not in result["pretrain"] else {
        "ok": False, "error": "skipped: no pretrained weights"}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    (args.out / "gpu_check.json").write_text(json.dumps(result, indent=1))
    (args.out / "gpu_check.md").write_text(markdown(result))
    print(f"gpu_check: wrote {args.out / 'gpu_check.md'} and gpu_check.json ({result['wall_s']:.0f} s)")
    return exitcodes.OK if ok and result["compare"]["ok"] else exitcodes.VERDICT


if __name__ == "__main__":
    sys.exit(main())
