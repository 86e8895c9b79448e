"""What `python -m train` and `python -m train compare` share: their common arguments, and turning them into a
TrainConfig, a data set and RunOptions, with errors mapped to exit codes (run_cli).

A flag of a TrainConfig field has that field as its dest (--lr1: phase1_lr) and reaches the config by itself
(config_overrides: dualpath.cli.given); a flag of a RunOptions field likewise (run_options: dualpath.cli.fill), and
add_run_options defines those once for train, compare and pretrain. Choices and defaults are read from the modules
that validate them (train.config, dualpath.model.config).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from dualpath import exitcodes
from dualpath.cli import default, fill, given
from train.config import AUGMENTS, DEVICES, LR_SCHEDULES, PRESETS, RunOptions, TrainConfig, preset

log = logging.getLogger("train")


def add_run_options(group, with_compile: bool = True) -> None:
    """The flags of RunOptions (how a run executes here) and --quiet, for train, compare and pretrain (no --compile)."""
    group.add_argument("--device", choices=DEVICES, default=default(RunOptions, "device"))
    if with_compile:
        group.add_argument("--compile", action="store_true", help="torch.compile the model (worth it on GPUs)")
    group.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 autocast (default: on for CUDA and for CPUs with native bf16: AVX512_BF16 / AMX)")
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                       default=default(RunOptions, "channels_last"),
                       help="NHWC memory layout (default: on; faster on GPUs and on CPUs with oneDNN)")
    group.add_argument("--threads", type=int,
                       help="CPU threads for torch (default: torch's choice; 1 on a CPU busy with other work)")
    group.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    from dualpath.model.config import BACKBONES

    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics.json, report.md)")
    run.add_argument("--preset", choices=tuple(PRESETS), help="configuration to start from (default: cpu)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out where it stopped")
    add_run_options(run)

    data = parser.add_argument_group("data")
    data.add_argument("--data", type=Path, help="a scenes data set folder (default: generate the preset's into --data-root)")
    data.add_argument("--data-root", type=Path, default=Path("data/scenes"), help="where generated data sets are cached")
    data.add_argument("--n-scenes", type=int, help="scenes to generate (preset: paper/cpu 6000)")
    data.add_argument("--workers", type=int, default=1, help="processes for generating scenes")

    model = parser.add_argument_group("model and training (override the preset)")
    model.add_argument("--backbone", help=" | ".join(BACKBONES))
    model.add_argument(
        "--pretrained", metavar="imagenet|none|PATH",
        help="backbone weights: PATH of a DenseNet state dict (preset cpu: the shipped scene-pretrained "
             "weights/densenet_small/backbone.pth), imagenet (torchvision's download, densenet121 only) or none "
             "(random init; phase 1 is then skipped). Loaded weights run phase 1 with frozen backbones")
    model.add_argument("--weights", type=Path, help="same as --pretrained PATH")
    model.add_argument("--folds", type=int, help="K-fold CV on the 80%% (1 = one stratified 1/5 validation split)")
    model.add_argument("--epochs", type=int, help="total epochs, phase 1 included")
    model.add_argument("--phase1-epochs", type=int, help="epochs with frozen backbones")
    model.add_argument("--lr1", dest="phase1_lr", metavar="LR1", type=float, help="phase 1 learning rate")
    model.add_argument("--lr2", dest="phase2_lr", metavar="LR2", type=float, help="phase 2 learning rate")
    model.add_argument("--backbone-lr-scale", type=float,
                       help="phase 2: the pretrained backbones learn at this fraction of --lr2, the rest at --lr2 "
                            "(default 1: one rate, as in the paper)")
    model.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES,
        help="lr within each phase: constant (the paper) or cosine decay after a linear warm-up (preset: cpu cosine)",
    )
    model.add_argument("--warmup-epochs", type=float, help="linear warm-up at the start of each phase (cosine only)")
    model.add_argument("--batch-size", type=int, help="global batch size")
    model.add_argument("--stem", help="DenseNet stem: imagenet (7x7/2 conv + pool, the paper's) or 3x3 (3x3/2 conv, no "
                                      "pool: the first dense block at 32x32 for 64x64 input)")
    model.add_argument("--augment", choices=AUGMENTS, help="label-preserving flips / dihedral transforms of each batch")
    model.add_argument("--extra-scenes", type=int,
                       help="generated training scenes added on another seed (never validation or test scenes)")
    model.add_argument("--extra-seed", type=int,
                       help=f"seed of the extra training scenes (default {default(TrainConfig, 'extra_seed')})")
    model.add_argument("--seed", type=int, help="splits, initialisation and shuffling")
    model.add_argument("--select-metric", help="validation metric that picks the best checkpoint (metrics.json key)")


def run_cli(args: argparse.Namespace, action, what: str = "training") -> int:
    """Shared by train and compare: logging, config, data, and the mapping of errors to exit codes. `what` names the
    command to a second one started on the same --out (one writer per run folder: dualpath.files.folder_lock)."""
    import contextlib

    from dualpath.scenes import DatasetError

    from dualpath.files import check_writable, folder_lock
    from dualpath.processes import sigterm_as_interrupt
    from train.distributed import env_from_environ

    setup_logging(args.quiet)
    try:
        with sigterm_as_interrupt():  # SIGTERM stops the run as Ctrl-C does (data workers ended, exit 130)
            check_writable(args.out, "into")  # before the data is generated and the model trained
            with folder_lock(args.out, what) if env_from_environ().is_main else contextlib.nullcontext():
                return _run_cli(args, action)
    except (ValueError, DatasetError, OSError) as err:  # OSError: missing inputs, full or read-only disk
        log.error("error: %s", err)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:
        log.error("interrupted; `--resume` with the same --out continues from the last finished epoch")
        return exitcodes.INTERRUPTED
    except RuntimeError as err:  # NonFiniteLossError, PretrainedWeightsUnavailable, CUDA errors
        log.error("error: %s", err)
        return exitcodes.BAD_INPUT if type(err).__name__ == "PretrainedWeightsUnavailable" else exitcodes.VERDICT


def _run_cli(args: argparse.Namespace, action) -> int:
    cfg = resolve_config(args)
    opts = run_options(args)  # every argument checked before any data is generated
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    dataset = resolve_dataset(args, cfg)
    # the data set's own seed and size, as the checkpoint records them (export and runtime.drift keep
    # calibration and drift scenes off them: dualpath.seeds)
    cfg = cfg.with_overrides(n_scenes=len(dataset.labels), data_seed=getattr(dataset, "seed", None))
    return action(cfg, dataset, opts, args.resume, resolve_extra(args, cfg, dataset))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (main() may run many times in one process, e.g. tests)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(quiet: bool) -> None:
    """INFO to stderr (WARNING with --quiet and on DDP processes but 0); run folders also get train.log at INFO."""
    from train.distributed import env_from_environ

    logger = logging.getLogger("train")
    logger.setLevel(logging.INFO)
    handler = next((h for h in logger.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # printed once, by this handler
    handler.setLevel(logging.WARNING if quiet or not env_from_environ().is_main else logging.INFO)


def config_overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (flags whose dest is the field), --weights as pretrained."""
    if args.weights is not None and args.pretrained is not None and args.pretrained != str(args.weights):
        raise ValueError(f"--weights {args.weights} and --pretrained {args.pretrained} contradict each other; pass one "
                         "of them")
    overrides = given(TrainConfig, args)
    if args.weights is not None:
        overrides["pretrained"] = str(args.weights)
    return overrides


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """The preset (or, with --resume, the run's saved config) with the given flags on top."""
    saved = _saved_config(args.out) if args.resume else None
    if saved is not None:
        base = TrainConfig.from_dict(saved["train_config"])
        if args.preset is not None:
            # `--preset X --resume` (make demo) continues the run only if it is that preset's run.
            wanted = _with_flags(preset(args.preset), args).to_dict()
            changed = [f"{k} {v!r} (saved) vs {wanted[k]!r}" for k, v in base.to_dict().items() if wanted[k] != v]
            if changed:
                raise ValueError(
                    f"{args.out} holds a run of another configuration than --preset {args.preset} with these flags "
                    f"({'; '.join(changed)}): remove that folder, train into a new --out, or resume it as it was "
                    "with --resume and no --preset"
                )
    else:
        base = preset(args.preset or "cpu")
    cfg = _with_flags(base, args)
    from train.loop import model_config  # torch: validated here, before any data is generated

    model_config(cfg)  # ValueError naming the field (e.g. an unknown --stem)
    return cfg


def _with_flags(base: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    overrides = config_overrides(args)
    if "epochs" in overrides and "phase1_epochs" not in overrides:
        # Keep the preset's phase 1 inside a shorter run rather than failing validation.
        overrides["phase1_epochs"] = min(base.phase1_epochs, overrides["epochs"])
    if args.select_metric is not None:
        from dualpath.metrics import LOWER_IS_BETTER, METRIC_KEYS

        if args.select_metric not in METRIC_KEYS:
            raise ValueError(f"--select-metric must be a metrics.json key: {', '.join(METRIC_KEYS)}")
        overrides["select_mode"] = "min" if args.select_metric in LOWER_IS_BETTER else "max"
    if args.stem is not None:
        overrides["model_options"] = {**base.model_options, "stem": args.stem}
    return base.with_overrides(**overrides)


def _saved_config(out: Path) -> dict | None:
    from dualpath.files import read_json

    path = out / "config.json"
    if not path.is_file():
        return None
    saved = read_json(path, ValueError, missing=f"no {path}",
                      corrupt=f"{path} is not a run's config ({{error}}); start a new run folder", expect=dict)
    if not isinstance(saved.get("train_config"), dict) or not isinstance(saved.get("data"), dict):
        raise ValueError(f"{path} is not a run's config (no train_config or data); start a new run folder")
    return saved


def resolve_dataset(args: argparse.Namespace, cfg: TrainConfig):
    from dualpath.scenes import DatasetError, SceneConfig, cache_tag, generate_dataset, load_dataset

    data = args.data
    if data is None and args.resume:
        saved = _saved_config(args.out)
        data = Path(saved["data"]["path"]) if saved and saved["data"].get("path") else None
    if data is not None:
        log.info("data set: %s", data)
        return load_dataset(data)
    kwargs = dict(seed=cfg.data_seed, n=cfg.n_scenes, workers=args.workers, progress=not args.quiet and sys.stderr.isatty(),
                  what="training's data generation", wait=True)  # a cache: a second training waits, then reuses it
    if (args.data_root / "manifest.json").is_file():
        # The root itself may hold a data set (e.g. `python -m dualpath.scenes generate --out data/scenes`): use it
        # when it is exactly this one (generate_dataset reuses an identical folder and refuses a different one).
        try:
            return generate_dataset(SceneConfig(), out=args.data_root, **kwargs)
        except DatasetError:
            pass
    out = args.data_root / f"n{cfg.n_scenes}-seed{cfg.data_seed}-{cache_tag(SceneConfig())}"
    log.info("data set: %s (generated once, reused afterwards)", out)
    return generate_dataset(SceneConfig(), out=out, **kwargs)


def run_options(args: argparse.Namespace, **overrides) -> RunOptions:
    """RunOptions from add_run_options' flags (pretrain: tensorboard=False)."""
    return fill(RunOptions, args, progress=not args.quiet, **overrides)


def resolve_extra(args: argparse.Namespace, cfg: TrainConfig, dataset):
    """The config's extra training scenes: the data set's own scene config on cfg.extra_seed, cached in --data-root."""
    if not cfg.extra_scenes:
        return None
    from dualpath.scenes import SceneConfig

    on_disk = bool(getattr(dataset, "manifest", None))  # a SceneDataset; tests may pass bare arrays
    config, base_seed = (dataset.config, dataset.seed) if on_disk else (SceneConfig(), cfg.data_seed)
    if cfg.extra_seed == base_seed:
        raise ValueError(f"the extra training scenes' seed ({cfg.extra_seed}) is the data set's own seed: they would "
                         "repeat its validation and test scenes; pass another --extra-seed")
    root = args.data_root.parent if (args.data_root / "manifest.json").is_file() else args.data_root  # not inside a set
    return generate_extra(config, cfg.extra_seed, cfg.extra_scenes, root, workers=args.workers,
                          progress=not args.quiet and sys.stderr.isatty())


def generate_extra(config, seed: int, n: int, root: Path, *, workers: int, progress: bool):
    """Extra training scenes, cached in `root` under a name of their count, seed and scene config (reused once made)."""
    from dualpath.scenes import cache_tag, generate_dataset

    out = root / f"extra-n{n}-seed{seed}-{cache_tag(config)}"
    log.info("extra training scenes: %s (generated once, reused afterwards)", out)
    return generate_dataset(config, seed=seed, n=n, out=out, workers=workers, progress=progress,
                            what="training's data generation", wait=True)  # a cache: wait, then reuse
