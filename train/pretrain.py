"""`python -m train pretrain`: a scene-pretrained DenseNet, the offline stand-in for ImageNet weights.

--model classifier (the default): the backbone the models use (dualpath.model.DenseNetBackbone: torchvision's DenseNet class) plus a 20-way linear head
learns the 20 labels (BCE) on a stream of generated scenes, chunk by chunk: chunk k is scenes 0..chunk-1 of seed
PRETRAIN_SEED_START + k, chunk 0 is the held-out set, and chunk k+1 is rendered while chunk k trains (a worker
process, or chunks written to disk first with --generate disk). After every chunk: an atomic checkpoint (--resume
continues after it). At the end: the held-out metrics, OUT/backbone.pth (a torchvision state dict, keys
`features.*`: what --weights loads) and OUT/backbone.json, its card.

--model dualpath: the `cpu` preset's whole dual-path model and loss on the same stream (train.pretrain_dualpath),
usually warm-started from a backbone.pth; out: OUT/model.pth (every weight of the model) and its card OUT/model.json.

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad arguments or inputs, 130 interrupted (--resume continues).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from dualpath.cli import default, fill
from dualpath.model.config import BACKBONES, STEMS
from dualpath.seeds import PRETRAIN_SEED_END, PRETRAIN_SEED_START, check_stream_above_every_set
from train import pretrain_run
from train.pretrain_run import (
    CARD_FORMAT, CARD_NAME, CHECKPOINT_NAME, WEIGHTS_NAME, Progress, SceneClassifier, evaluate, load_state, lr_at,
    save_state, train_chunk, write_outputs,
)
from train.pretrain_stream import GENERATE, MODELS, ChunkSource, PretrainConfig, chunk_seed

# The command's own names, and its parts' as before the split: the configuration and the scene stream
# (train.pretrain_stream), the run (train.pretrain_run).
__all__ = [
    "PRETRAIN_SEED_END", "PRETRAIN_SEED_START", "check_seeds_disjoint", "run_pretrain", "build_parser", "main",
    "PretrainConfig", "ChunkSource", "chunk_seed",
    "CARD_FORMAT", "CARD_NAME", "CHECKPOINT_NAME", "WEIGHTS_NAME", "Progress", "SceneClassifier", "evaluate",
    "load_state", "lr_at", "save_state", "train_chunk", "write_outputs",
]

log = logging.getLogger("train")


def check_seeds_disjoint() -> None:
    """The pretraining seeds lie above every seed the project uses elsewhere (dualpath.seeds)."""
    check_stream_above_every_set(PRETRAIN_SEED_START, PRETRAIN_SEED_END)


def run_pretrain(cfg: PretrainConfig, out: Path, opts, resume: bool = False, half: bool = False,
                 argv: Sequence[str] = (), workers: int = 1, checkpoint_minutes: float = 0.0) -> dict:
    from dualpath.files import folder_lock

    check_seeds_disjoint()
    with folder_lock(out, "pretraining"):  # one writer per run folder
        return pretrain_run.run(cfg, out, opts, resume, half, argv, workers, checkpoint_minutes)


# --- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """PretrainConfig's fields as flags (dest = field, default = the field's), then how the run executes here."""
    from train.arguments import add_run_options
    from train.config import AUGMENTS

    def d(name: str):
        return default(PretrainConfig, name)

    parser = argparse.ArgumentParser(
        prog="python -m train pretrain",
        description=__doc__.split("\n\nExit codes")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m train pretrain --backbone densenet_small --budget-minutes 120 --out weights/"
               "densenet_small\n  python -m train --preset cpu --weights weights/densenet_small/backbone.pth ...\n"
               "  python -m train pretrain --stem 3x3 --init weights/densenet_small/pretrain.pt --lr 3e-4 "
               "--budget-minutes 40 --out runs/pretrain-3x3\n"
               "  python -m train pretrain --model dualpath --init weights/densenet_small/backbone.pth "
               "--budget-minutes 90 --out weights/dualpath_small",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder: backbone.pth, backbone.json, pretrain.pt")
    parser.add_argument("--model", choices=MODELS, default=d("model"),
                        help="classifier: one DenseNet + a linear head (out: backbone.pth, for --pretrained); "
                             "dualpath: the `cpu` preset's whole model and loss (out: model.pth, for --pretrained: "
                             "every weight of the model); --init a backbone.pth starts its two DenseNets "
                             f"(default {d('model')})")
    parser.add_argument("--backbone-lr-scale", type=float, default=d("backbone_lr_scale"),
                        help="--model dualpath: the DenseNets learn at this fraction of --lr (default "
                             f"{d('backbone_lr_scale')})")
    parser.add_argument("--backbone", default=d("backbone"),
                        help=f"one of {', '.join(BACKBONES)} (default {d('backbone')})")
    parser.add_argument("--stem", default=d("stem"), help=f"one of {', '.join(STEMS)} (default {d('stem')})")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scenes", type=int, help="training scenes to see (whole chunks)")
    size.add_argument("--budget-minutes", type=float, help="train for this long (wall clock), then evaluate")
    parser.add_argument("--chunk", type=int, default=d("chunk"), help=f"scenes per chunk / seed (default {d('chunk')})")
    parser.add_argument("--held-out", type=int, default=d("held_out"), help=f"held-out scenes (default {d('held_out')})")
    parser.add_argument("--batch-size", type=int, default=d("batch_size"))
    parser.add_argument("--lr", type=float, default=d("lr"))
    parser.add_argument("--augment", choices=AUGMENTS, default=d("augment"))
    parser.add_argument("--generate", choices=GENERATE, default=d("generate"),
                        help="worker: render the next chunk in a process beside training; disk: into OUT/chunks first")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering scenes (default 1)")
    parser.add_argument("--seed", type=int, default=d("seed"), help="initialisation and shuffling")
    parser.add_argument("--init", metavar="PATH",
                        help="warm start from a backbone.pth (weights/<name>/backbone.pth) or a pretrain.pt: every "
                             "tensor that fits by name and shape is copied; the stem's conv may differ (another "
                             "--stem) and the head starts fresh from a backbone.pth; the card records what was kept. "
                             "With --model dualpath: a backbone.pth starts both DenseNets (decoder and head fresh); a "
                             "model.pth (weights/dualpath_small/model.pth) or the pretrain.pt of a --model dualpath "
                             "run continues every weight; the stream starts again at chunk 1 unless --first-chunk says "
                             "otherwise")
    parser.add_argument("--first-chunk", type=int, default=d("first_chunk"), metavar="K",
                        help="train on the stream's chunks K, K+1, ... (seeds PRETRAIN_SEED_START + K ...): a "
                             "continued run goes on past the chunks its warm start saw (the last one is in its "
                             "card's seed_range.train) instead of seeing them again; chunk 0 stays the held-out set "
                             f"(default {d('first_chunk')})")
    parser.add_argument("--half", action="store_true", help="save backbone.pth in float16 (half the size)")
    parser.add_argument("--checkpoint-minutes", type=float, default=2.0,
                        help="checkpoint (pretrain.pt) at most this often, and at the end (default 2; 0: every chunk)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after its last chunk")
    add_run_options(parser, with_compile=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dualpath import exitcodes
    from dualpath.processes import sigterm_as_interrupt
    from train.arguments import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet)

    try:
        with sigterm_as_interrupt():  # SIGTERM stops the run as Ctrl-C does: the scene worker ended, exit 130
            card = _checked_run(args, argv)
    except (ValueError, OSError) as err:
        log.error("error: %s", err)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:
        log.error("interrupted; `--resume` with the same --out continues after the last finished chunk")
        return exitcodes.INTERRUPTED
    except RuntimeError as err:  # NonFiniteLossError, CUDA errors (out of memory ...)
        log.error("error: %s", err)
        return exitcodes.VERDICT
    weights = args.out / card["weights_file"]
    log.info("wrote %s and its card %s (held-out macro mAP %.3f on noisy scenes); load it with --pretrained %s",
             weights, weights.with_suffix(".json").name, card["held_out"]["noisy"]["macro_map"], weights)
    return exitcodes.OK


def _checked_run(args: argparse.Namespace, argv: list[str]) -> dict:
    from dualpath.files import check_writable
    from train.arguments import run_options

    check_writable(args.out, "into")
    cfg = fill(PretrainConfig, args)
    opts = run_options(args, tensorboard=False)
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.checkpoint_minutes < 0:
        raise ValueError(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    return run_pretrain(cfg, args.out, opts, resume=args.resume, half=args.half, argv=argv, workers=args.workers,
                        checkpoint_minutes=args.checkpoint_minutes)
