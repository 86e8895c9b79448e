"""Command line: `python -m train [options]` trains one model; `python -m train compare [options]` the paper's four;
`python -m train pretrain [options]` a scene-pretrained backbone (COMMANDS, the table of sub-commands). The
arguments train and compare share, and what they turn into, are in train/arguments.py.

main(argv) -> exit code; nothing runs at import. Exit codes: 0 done, 1 training failed (NaN/inf loss),
2 bad arguments or inputs, 130 interrupted (--resume continues).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from dualpath.architectures import ARCHITECTURES
from dualpath.cli import dispatch
from train.arguments import add_common_arguments, run_cli
from train.config import LOSSES, PRESETS, RunOptions, TrainConfig

DESCRIPTION = """\
Train the attention-aware dual-path autoencoder (or a paper baseline) on generated kitchen scenes.

Two phases as in the paper: phase 1 trains with the pretrained DenseNet backbones frozen (BatchNorm still
learns), phase 2 trains everything at a lower learning rate; with random init (--pretrained none) phase 1 is
skipped. Splits: an 80:20 multi-label stratified held-out test set, then K stratified folds on the 80
(--folds 1: one stratified validation split of 1/5 of the 80). Each fold keeps its best checkpoint by
validation macro mAP; metrics.json reports the held-out test metrics (mean over the fold models) and the
cross-validation metrics, report.md shows them with the plots."""

EPILOG = """\
examples:
  python -m train --preset cpu --model dualpath --loss asl --folds 1 --out runs/cpu-asl  (shipped pretrained weights)
  python -m train --preset cpu --pretrained none --out runs/cpu-scratch          (from random initialisation)
  python -m train --preset paper --pretrained densenet121.pth --out runs/paper   (offline ImageNet weights)
  torchrun --nproc_per_node 4 -m train --preset paper --out runs/paper-ddp       (multi-GPU, DDP)
  python -m train --resume --out runs/cpu-asl                                    (continue a stopped run)
  python -m train compare --preset cpu --folds 1 --out runs/compare              (the paper's Tables I-III)
  python -m train pretrain --budget-minutes 100 --out weights/densenet_small     (a scene-pretrained backbone)

presets: """ + "; ".join(
    f"{name}: {c.backbone}, pretrained {c.pretrained}, {c.n_scenes} scenes, {c.epochs} epochs, {c.folds} fold(s)"
    for name, c in PRESETS.items()
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", dest="arch", choices=tuple(ARCHITECTURES),
                        help="; ".join(f"{name}: {a.summary}" for name, a in ARCHITECTURES.items()))
    parser.add_argument("--loss", choices=LOSSES, help="classification loss: asl (asymmetric) or bce")
    add_common_arguments(parser)
    return parser


def _compare(argv: list[str]) -> int:
    from train.compare import main as compare_main

    return compare_main(argv)


def _pretrain(argv: list[str]) -> int:
    from train.pretrain import main as pretrain_main

    return pretrain_main(argv)


# `python -m train NAME ...` runs NAME's main with the rest; any other first argument trains one model (train_main).
COMMANDS = {"compare": _compare, "pretrain": _pretrain}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(argv, COMMANDS, train_main)


def train_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(args, lambda cfg, dataset, opts, resume, extra: _train(cfg, args.out, dataset, opts, resume, extra))


def _train(cfg: TrainConfig, out: Path, dataset, opts: RunOptions, resume: bool, extra=None) -> int:
    from train.experiment import run_experiment

    run_experiment(cfg, out, dataset, opts, resume=resume, extra=extra)
    return 0
