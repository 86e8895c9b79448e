"""Why does the model learn slowly? Variants trained for the same wall-clock budget on the same split, one table.

Every row trains on the training part of the default split of the `n6000-seed0` scenes (plus, where a row says so,
extra scenes from another training seed: never the held-out ones), with a linear warm-up + cosine learning rate over
its wall-clock budget, then is evaluated once on the 1199 held-out test scenes of that split (the scenes every
report of this project is measured on). Each row runs in its own process (no thread pool or allocator shared
with another row) with the same thread count, one after another.

    python -m benchmarks.recipe --budget 240 --threads 1 --rows plain_cnn densenet dualpath dualpath_stem3
    python -m benchmarks.recipe --list                   # the variants and what each changes
    python -m benchmarks.recipe --budget 720 --threads 2 --rows plain_cnn cpu_recipe --out benchmarks/results/recipe_12min.json

Rows already in --out with the same budget and threads are kept (the script resumes a stopped table).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from benchmarks import run_module
from dualpath import exitcodes
from dualpath.machine import describe, headline


@dataclass(frozen=True)
class Variant:
    """One row: what it trains and how; fields not named keep the `cpu` preset's values as landed."""

    description: str
    arch: str = "dualpath"  # dualpath | densenet | cae | plain_cnn (the reference below)
    backbone: str = "densenet_small"
    model_options: dict = field(default_factory=dict)  # ModelConfig fields (stem, fusion_norm, hidden, ...)
    loss: str = "asl"
    recon_weight: float = 1.5
    cls_weight: float = 0.5
    lr: float = 2e-3
    batch_size: int = 32
    weight_decay: float = 0.0
    optimizer: str = "adam"  # adam (the trainer's) | adamw
    augment: str = "none"  # train.data.AUGMENTS
    extra_scenes: int = 0  # training scenes added from --extra-data (another seed; never test scenes)
    amp: bool = False  # bf16 autocast (on a CPU with native bf16, AVX512_BF16 / AMX, it is faster)


BASE = Variant("dual-path model as landed: ImageNet stem, z * z_c, 1.5 MSE + 0.5 ASL, Adam 2e-3, batch 32")
VARIANTS: dict[str, Variant] = {
    "plain_cnn": Variant(
        "plain CNN reference: 3x3/2 stem, 4 stages of two 3x3 conv-BN-ReLU (32/64/128/256), GAP, dropout, linear; "
        "BCE, AdamW 2e-3, flips, batch 64", arch="plain_cnn", loss="bce", recon_weight=0.0, cls_weight=1.0,
        batch_size=64, optimizer="adamw", weight_decay=0.05, augment="flips"),
    "densenet": replace(BASE, description="DenseNet-alone baseline (BCE), as landed", arch="densenet", loss="bce",
                        recon_weight=0.0, cls_weight=1.0),
    "dualpath": BASE,
    "dualpath_stem3": replace(BASE, description="+ 3x3 stride-2 stem, no max-pool (first dense block at 32x32)",
                              model_options={"stem": "3x3"}),
    "densenet_stem3": replace(BASE, description="DenseNet-alone baseline (BCE) + 3x3 stem", arch="densenet",
                              loss="bce", recon_weight=0.0, cls_weight=1.0, model_options={"stem": "3x3"}),
    "dualpath_fnorm": replace(BASE, description="+ BatchNorm on the fused vector", model_options={"fusion_norm": True}),
    "dualpath_b64": replace(BASE, description="+ batch 64", batch_size=64),
    "dualpath_cls2": replace(BASE, description="+ loss 1.5 MSE + 2.0 ASL (classification weighted up)",
                             cls_weight=2.0),
    "dualpath_aug": replace(BASE, description="+ dihedral augmentation (flips + transposes)", augment="dihedral"),
    "dualpath_extra": replace(BASE, description="+ 30000 extra training scenes (seed 1)", extra_scenes=30000),
    "dualpath_bce": replace(BASE, description="+ BCE instead of ASL", loss="bce"),
    "dualpath_wd": replace(BASE, description="+ AdamW, weight decay 0.05", optimizer="adamw", weight_decay=0.05),
    "dualpath_lr4": replace(BASE, description="+ lr 4e-3", lr=4e-3),
}
# Combinations of the changes that helped alone (or are expected to pay only in longer runs: more data, augmentation).
COMBO = replace(BASE, description="batch 64 + 1.5 MSE + 2.0 ASL + dihedral augmentation + 30000 extra scenes",
                batch_size=64, cls_weight=2.0, augment="dihedral", extra_scenes=30000)
VARIANTS.update({
    "combo": COMBO,
    "combo_stem3": replace(COMBO, description=COMBO.description + " + 3x3 stem", model_options={"stem": "3x3"}),
    "dualpath_bf16": replace(BASE, description="+ bf16 autocast (the CPU has AVX512_BF16)", amp=True),
    "combo_bf16": replace(COMBO, description=COMBO.description + " + bf16 autocast", amp=True),
    "combo_lr4_bf16": replace(COMBO, description=COMBO.description + " + lr 4e-3 + bf16 autocast", amp=True, lr=4e-3),
    "combo60k_bf16": replace(COMBO, description=COMBO.description.replace("30000", "60000") + " + bf16 autocast",
                             amp=True, extra_scenes=60000),
    "combo_noextra_bf16": replace(COMBO, description=COMBO.description.replace(" + 30000 extra scenes", "")
                                  + " + bf16 autocast", amp=True, extra_scenes=0),
    "combo_stem3_bf16": replace(COMBO, description=COMBO.description + " + 3x3 stem + bf16 autocast", amp=True,
                                model_options={"stem": "3x3"}),
})


def preset_variant(name: str = "cpu") -> Variant:
    """The row of a train preset as `python -m train --preset NAME --pretrained none` trains it (its recipe from random
    init: phase 2 lr; bf16 where the CPU has it). Rows here train from scratch; the shipped weights are not used."""
    from train.config import preset
    from train.experiment import cpu_has_native_bf16

    cfg = preset(name)
    return Variant(f"the `{name}` preset from scratch (--pretrained none)", arch=cfg.arch, backbone=cfg.backbone,
                   model_options=dict(cfg.model_options), loss=cfg.loss, recon_weight=cfg.recon_weight,
                   cls_weight=cfg.cls_weight, lr=cfg.phase2_lr, batch_size=cfg.batch_size,
                   weight_decay=cfg.weight_decay, augment=cfg.augment, extra_scenes=cfg.extra_scenes,
                   amp=cpu_has_native_bf16())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=["plain_cnn", "densenet", "dualpath"], help="variants (see --list)")
    p.add_argument("--budget", type=float, default=240.0, help="training wall-clock seconds per row (default 240)")
    p.add_argument("--epochs", type=float, help="train each row for this many epochs instead of --budget seconds "
                   "(the learning rate then follows the fraction of steps done): learning per epoch, not per second")
    p.add_argument("--threads", type=int, default=1, help="torch threads per row (default 1)")
    p.add_argument("--data", type=Path, default=Path("data/scenes"), help="the n6000-seed0 scenes (make demo's)")
    p.add_argument("--extra-data", type=Path, help="scenes of another training seed for rows with extra_scenes "
                   "(default: generated beside --data on seed 1, as python -m train does)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recipe.json"))
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    p.add_argument("--row", help=argparse.SUPPRESS)  # internal: train one row in this process
    args = p.parse_args(argv)
    VARIANTS["cpu_preset"] = preset_variant("cpu")
    if args.list:
        for name, v in VARIANTS.items():
            print(f"{name:18s} {v.description}")
        return 0
    unknown = [r for r in args.rows if r not in VARIANTS]
    if unknown:
        print(f"recipe: unknown rows {unknown}; see --list", file=sys.stderr)
        return exitcodes.BAD_INPUT
    if args.row:
        print(json.dumps(train_row(args.row, VARIANTS[args.row], args)))
        return 0
    return run_table(args)


def run_table(args) -> int:
    done = _load(args.out)
    rows = done.get("rows", {})
    for name in args.rows:
        key = f"{name}@{args.epochs:g}ep/{args.threads}t" if args.epochs else f"{name}@{args.budget:g}s/{args.threads}t"
        if key in rows:
            print(f"recipe: {key} already in {args.out}, kept")
            continue
        row_args = ["--row", name, "--budget", str(args.budget), "--threads", str(args.threads),
                    "--data", str(args.data)] + (["--extra-data", str(args.extra_data)] if args.extra_data else []) + (
                    ["--epochs", str(args.epochs)] if args.epochs else [])
        print(f"recipe: training {key} ...", flush=True)
        proc = run_module("benchmarks.recipe", row_args)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            print(f"recipe: row {name} failed (exit {proc.returncode})", file=sys.stderr)
            return exitcodes.BAD_INPUT if proc.returncode == exitcodes.BAD_INPUT else exitcodes.VERDICT
        rows[key] = json.loads(proc.stdout.strip().splitlines()[-1])
        _save(args.out, {"machine": describe(), "rows": rows})
        print(format_table(rows), flush=True)
    print(format_table(rows))
    print(f"machine: {headline(describe())}; JSON: {args.out}")
    return 0


def train_row(name: str, v: Variant, args) -> dict:
    import torch

    from dualpath.scenes import load_dataset
    from train.data import Normalizer, augment_pairs, to_device
    from train.evaluate import autocast, compute_metrics, predict
    from train.experiment import with_extra_training_scenes
    from train.losses import MultitaskLoss
    from train.splits import make_splits

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = load_dataset(args.data)
    if len(base.labels) != 6000:
        print(f"recipe: {args.data} must hold the default n6000-seed0 scenes (make demo generates them)",
              file=sys.stderr)
        raise SystemExit(exitcodes.BAD_INPUT)
    splits = make_splits(base.labels, folds=1, seed=0)  # the cpu preset's split: its test part is the 1199 scenes
    arrays = base
    if v.extra_scenes:  # appended to the training part only, exactly as the trainer does
        extra = load_dataset(args.extra_data) if args.extra_data else _extra_scenes(args.data, v.extra_scenes)
        arrays, splits = with_extra_training_scenes(base, splits, extra, v.extra_scenes)
    train_idx = splits.folds[0].train

    device = torch.device("cpu")
    data = to_device(arrays, device)
    model = build(v).to(memory_format=torch.channels_last)
    criterion = MultitaskLoss(cls_loss=v.loss, recon_weight=v.recon_weight, cls_weight=v.cls_weight)
    opt_cls = torch.optim.AdamW if v.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=v.lr, weight_decay=v.weight_decay)
    norm = Normalizer(device, channels_last=True)
    gen = torch.Generator().manual_seed(0)
    idx_all = torch.as_tensor(train_idx)
    total_steps = int(args.epochs * (len(idx_all) // v.batch_size)) if args.epochs else None

    def progress() -> float:  # fraction of the row's budget (wall time, or steps with --epochs) used so far
        return steps / total_steps if total_steps else (time.perf_counter() - start) / args.budget

    seen, steps, start = 0, 0, time.perf_counter()
    model.train()
    while progress() < 1.0:
        perm = idx_all[torch.randperm(len(idx_all), generator=gen)]
        for batch in perm[: len(perm) // v.batch_size * v.batch_size].view(-1, v.batch_size):
            if (frac := progress()) >= 1.0:
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(v.lr, frac)
            noisy, clean = augment_pairs(data.noisy[batch], data.clean[batch], v.augment, gen)
            with autocast(device, v.amp):
                out = model(norm.inputs(noisy))
                total, _ = criterion(out, norm.targets(clean), data.labels[batch].float())
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            seen, steps = seen + len(batch), steps + 1
    train_s = time.perf_counter() - start
    pred = predict(model, criterion, data, splits.test, normalizer=norm, batch_size=256, amp=v.amp)
    m = compute_metrics(pred, arrays.labels, arrays.clean)
    return {"row": name, "description": v.description, "variant": asdict(v),
            "budget_s": None if args.epochs else args.budget, "budget_epochs": args.epochs,
            "threads": args.threads, "train_s": round(train_s, 1), "images_per_s": round(seen / train_s, 1),
            "epochs": round(seen / len(train_idx), 2), "steps": steps, "n_train": int(len(train_idx)),
            "n_test": int(len(splits.test)), **{k: m.get(k) for k in ("accuracy", "macro_map", "macro_auc", "ssim")},
            "test_cls_loss": pred.losses["cls"]}


def _extra_scenes(data: Path, n: int):
    """The trainer's own extra training scenes (the cpu preset's seed, cached beside the data set, as `python -m train`
    makes them)."""
    from dualpath.scenes import SceneConfig
    from train.arguments import generate_extra
    from train.config import CPU

    return generate_extra(SceneConfig(), CPU.extra_seed, n, data.parent, workers=2, progress=False)


def lr_at(peak: float, frac: float, warmup: float = 0.03) -> float:
    """Linear warm-up over the first 3% of the budget, then cosine to 0 at its end (as a fraction of wall time)."""
    if frac < warmup:
        return peak * (frac / warmup + 1e-3)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min((frac - warmup) / (1.0 - warmup), 1.0)))


def build(v: Variant):
    from dualpath.model import ModelConfig, build_model

    if v.arch == "plain_cnn":
        return PlainCNN()
    return build_model(ModelConfig(arch=v.arch, backbone=v.backbone, pretrained="none", **v.model_options))


def PlainCNN():  # noqa: N802 (a factory named like the class it returns)
    """The reference a sceptical reviewer writes first (see the issue): no DenseNet, no decoder."""
    from torch import nn

    from dualpath.model.base import ModelOutput
    from dualpath.model.decoder import conv_bn_relu

    class _PlainCNN(nn.Module):
        def __init__(self, widths=(32, 64, 128, 256), num_classes: int = 20) -> None:
            super().__init__()
            layers = [conv_bn_relu(3, widths[0], stride=2)]  # (N, 32, 32, 32)
            for i, w in enumerate(widths):
                layers += [conv_bn_relu(widths[i - 1] if i else widths[0], w, stride=2 if i else 1), conv_bn_relu(w, w)]
            self.features = nn.Sequential(*layers)  # (N, 256, 4, 4)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3), nn.Linear(widths[-1], num_classes))

        def forward(self, x):
            return ModelOutput(self.head(self.features(x)), None)

    return _PlainCNN()


def format_table(rows: dict) -> str:
    head = (f"| row | budget | img/s | epochs | accuracy | macro mAP | macro AUC | SSIM | what changes |\n"
            f"|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for key, r in rows.items():
        ssim = "-" if r["ssim"] is None else f"{r['ssim']:.3f}"
        budget = f"{r['budget_s']:g} s" if r.get("budget_s") else f"{r['budget_epochs']:g} epochs"
        lines.append(f"| {r['row']} | {budget} x {r['threads']}t | {r['images_per_s']:.0f} | "
                     f"{r['epochs']:.1f} | {r['accuracy']:.3f} | {r['macro_map']:.3f} | {r['macro_auc']:.3f} | "
                     f"{ssim} | {r['description']} |")
    return "\n".join(lines)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


if __name__ == "__main__":
    raise SystemExit(main())
