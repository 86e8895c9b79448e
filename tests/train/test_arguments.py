"""train's command lines from their configs (issue 22): flags reach TrainConfig / RunOptions / PretrainConfig by their
dests (one helper, dualpath.cli), choices and defaults are the configs', and sub-commands come from one table."""
from __future__ import annotations

import pytest

from dualpath.cli import fill
from dualpath.model.config import BACKBONES
from train import cli, pretrain
from train.arguments import config_overrides, run_options
from train.config import AUGMENTS, DEVICES, LR_SCHEDULES, RunOptions

ARGV = [
    [],
    ["--model", "cae", "--loss", "bce", "--backbone", "densenet_tiny", "--pretrained", "none", "--folds", "3",
     "--epochs", "5", "--phase1-epochs", "2", "--lr1", "0.01", "--lr2", "0.002", "--lr-schedule", "cosine",
     "--warmup-epochs", "0.5", "--batch-size", "8", "--seed", "4", "--select-metric", "ssim", "--n-scenes", "90",
     "--augment", "flips", "--extra-scenes", "12", "--extra-seed", "3"],
    ["--weights", "w.pth", "--device", "cpu", "--compile", "--no-amp", "--no-channels-last", "--threads", "2",
     "--quiet"],
]


def _before(args) -> dict:  # train/arguments.py's field-by-field copy before issue 22, unset flags dropped
    pretrained = str(args.weights) if args.weights is not None else args.pretrained
    old = {"arch": getattr(args, "arch", None), "loss": getattr(args, "loss", None), "backbone": args.backbone,
           "pretrained": pretrained, "folds": args.folds, "epochs": args.epochs, "phase1_epochs": args.phase1_epochs,
           "phase1_lr": args.phase1_lr, "phase2_lr": args.phase2_lr, "lr_schedule": args.lr_schedule,
           "warmup_epochs": args.warmup_epochs, "batch_size": args.batch_size, "seed": args.seed,
           "select_metric": args.select_metric, "n_scenes": args.n_scenes, "augment": args.augment,
           "extra_scenes": args.extra_scenes, "extra_seed": args.extra_seed}
    return {k: v for k, v in old.items() if v is not None}


@pytest.mark.parametrize("argv", ARGV)
@pytest.mark.parametrize("command", ["train", "compare"])
def test_the_config_from_flags_is_the_field_by_field_one(command, argv):
    from train.compare import build_parser as compare_parser

    parser = cli.build_parser() if command == "train" else compare_parser()
    if command == "compare":
        argv = [a for a in argv if a not in ("--model", "cae", "--loss", "bce")]
    args = parser.parse_args(["--out", "unused", *argv])
    assert config_overrides(args) == _before(args)
    assert run_options(args) == RunOptions(device=args.device, amp=args.amp, channels_last=args.channels_last,
                                           compile=args.compile, progress=not args.quiet, threads=args.threads)


@pytest.mark.parametrize("argv", [["--scenes", "48"], ["--budget-minutes", "3", "--backbone", "densenet_tiny",
                                  "--stem", "3x3", "--chunk", "24", "--held-out", "20", "--batch-size", "12",
                                  "--lr", "0.01", "--augment", "none", "--generate", "disk", "--seed", "2",
                                  "--device", "cpu", "--no-amp", "--threads", "1", "--quiet"]])
def test_the_pretraining_config_from_flags_is_the_field_by_field_one(argv):
    args = pretrain.build_parser().parse_args(["--out", "unused", *argv])
    assert fill(pretrain.PretrainConfig, args) == pretrain.PretrainConfig(
        backbone=args.backbone, stem=args.stem, scenes=args.scenes, budget_minutes=args.budget_minutes,
        chunk=args.chunk, held_out=args.held_out, batch_size=args.batch_size, lr=args.lr, augment=args.augment,
        generate=args.generate, seed=args.seed)
    assert run_options(args, tensorboard=False) == RunOptions(
        device=args.device, amp=args.amp, channels_last=args.channels_last, progress=not args.quiet,
        tensorboard=False, threads=args.threads)


def test_choices_and_defaults_are_the_configs():
    actions = {a.dest: a for a in cli.build_parser()._actions}
    assert actions["device"].choices == DEVICES and actions["device"].default == RunOptions().device
    assert actions["lr_schedule"].choices == LR_SCHEDULES and actions["augment"].choices == AUGMENTS
    assert actions["backbone"].help == " | ".join(BACKBONES)
    pre = {a.dest: a for a in pretrain.build_parser()._actions}
    defaults = pretrain.PretrainConfig(scenes=1)
    for name in ("backbone", "stem", "chunk", "held_out", "batch_size", "lr", "augment", "generate", "seed"):
        assert pre[name].default == getattr(defaults, name), name
    assert "compile" not in pre and pre["augment"].choices == AUGMENTS


def test_sub_commands_come_from_one_table(monkeypatch):
    import train.compare

    calls = []
    monkeypatch.setattr(pretrain, "main", lambda argv: calls.append(("pretrain", argv)) or 7)
    monkeypatch.setattr(train.compare, "main", lambda argv: calls.append(("compare", argv)) or 8)
    monkeypatch.setattr(cli, "train_main", lambda argv: calls.append(("train", argv)) or 9)
    assert set(cli.COMMANDS) == {"compare", "pretrain"}
    assert cli.main(["pretrain", "--scenes", "1"]) == 7 and cli.main(["compare", "--rows", "cae_bce"]) == 8
    assert cli.main(["--preset", "cpu"]) == 9
    assert calls == [("pretrain", ["--scenes", "1"]), ("compare", ["--rows", "cae_bce"]), ("train", ["--preset", "cpu"])]
