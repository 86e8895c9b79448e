"""One experiment: splits -> K folds of two-phase training -> best checkpoints on validation and held-out test
-> metrics.json, plots and report.md in the run folder.

Run folder layout:
    config.json     the TrainConfig and the data set it ran on     splits.json  test / fold indices
    fold<k>/        last.pt, best.pt, log.csv (+ tb/ with tensorboard)
    best.pt         copy of the best fold's best.pt (by validation select_metric): the model to export
    metrics.json    held-out test metrics (mean over the fold models) at top level; folds, cv_mean/std beside them
    predictions.npz test probabilities of best.pt and a few reconstructions    report.md + *.png    train.log
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from dualpath import contract, metrics
from dualpath.diff import differences
from dualpath.files import atomic_path, folder_lock, read_json, remove_stale_temporaries, write_json
from dualpath.metrics import METRIC_KEYS
from train import checkpoint as ckpt_io
from train import distributed, report
from train.config import RunOptions, TrainConfig
from train.data import DeviceData, Normalizer, SceneArrays, to_device
from train.evaluate import Predictions, compute_metrics, is_better, predict
from train.losses import MultitaskLoss
from train.loop import FoldResult, Hook, Runtime, train_fold
from train.splits import Fold, Splits, load_splits, make_splits, save_splits

log = logging.getLogger("train")
GRID_SCENES = 8  # reconstructions kept in predictions.npz for the report / comparison grids


@dataclass(frozen=True)
class FoldEvaluation:
    fold: int
    best_epoch: int
    val: dict
    test: dict
    test_pred: Predictions


def resolve_runtime(opts: RunOptions, env: distributed.DistEnv) -> Runtime:
    device = distributed.resolve_device(opts.device, env)
    cuda = device.type == "cuda"
    return Runtime(
        device=device,
        amp=(cuda or cpu_has_native_bf16()) if opts.amp is None else opts.amp,
        channels_last=opts.channels_last,
        compile=opts.compile,
        progress=opts.progress,
        tensorboard=opts.tensorboard,
        dist=env,
    )


def cpu_has_native_bf16() -> bool:
    """AVX512_BF16 or AMX: bf16 autocast is faster there at the same held-out mAP (README, "Recognition from
    scratch"); elsewhere CPUs emulate bf16 and it is slower."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own probes (private, so guarded)
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def run_experiment(
    cfg: TrainConfig,
    out: Path,
    dataset: SceneArrays,
    opts: RunOptions = RunOptions(),
    *,
    resume: bool = False,
    hooks: tuple[Hook, ...] = (),
    extra: SceneArrays | None = None,
) -> dict | None:
    """Train and evaluate; returns the metrics.json dict on the main process (None on the others).

    `extra`: scenes added to every fold's training part only (cfg.extra_scenes of them, from another seed); the
    splits, validation and held-out test come from `dataset` alone, so they stay those of the data set."""
    out = Path(out)
    env = distributed.env_from_environ()
    rt = resolve_runtime(opts, env)
    distributed.init(env, rt.device)
    handler = _file_log(out / "train.log") if env.is_main else None
    threads = torch.get_num_threads()
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    stack = contextlib.ExitStack()
    try:
        if env.is_main:
            stack.enter_context(folder_lock(out, "training"))  # one writer per run folder (re-entrant)
            resume = _prepare_run_folder(out, cfg, dataset, resume)
        resume = distributed.broadcast_flag(resume, env, rt.device)  # the other processes follow process 0
        splits = _splits(out, cfg, dataset.labels, env)
        if cfg.extra_scenes:
            dataset, splits = with_extra_training_scenes(dataset, splits, extra, cfg.extra_scenes)
        log.info(
            "%s + %s on %s (amp %s, channels_last %s, %d process(es)); %d scenes: %d test, folds of %d train / %d val",
            cfg.arch, cfg.loss, rt.device, rt.amp, rt.channels_last, env.world_size, len(dataset.labels),
            len(splits.test), len(splits.folds[0].train), len(splits.folds[0].val),
        )
        data = to_device(dataset, rt.device)
        results = [
            train_fold(cfg, k, fold, dataset, data, out / f"fold{k}", rt, resume=resume, hooks=hooks)
            for k, fold in enumerate(splits.folds)
        ]
        summary = _finish(cfg, out, dataset, data, splits, results, rt) if env.is_main else None
        distributed.barrier(env)
        return summary
    finally:
        stack.close()
        torch.set_num_threads(threads)
        if handler is not None:
            logging.getLogger("train").removeHandler(handler)
            handler.close()
        distributed.shutdown(env)


def _prepare_run_folder(out: Path, cfg: TrainConfig, dataset: SceneArrays, resume: bool) -> bool:
    """Refuse to mix two runs in one folder; returns whether there is anything to resume."""
    config_path = out / "config.json"
    record = {"train_config": cfg.to_dict(), "data": _data_record(dataset), "weights": _weights_record(cfg)}
    if config_path.is_file() and not any(out.glob("fold*/last.pt")):
        # Set up but never finished an epoch (e.g. stopped for missing weights): nothing to keep or resume.
        for name in ("config.json", "splits.json"):
            (out / name).unlink(missing_ok=True)
    if config_path.is_file():
        if not resume:
            raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        remove_stale_temporaries(out)  # what a killed run was writing
        saved = read_json(config_path, ValueError, missing=f"no {config_path}",
                          corrupt=f"{config_path} is not a run's config ({{error}}); choose another --out", expect=dict)
        if "weights" not in saved:  # a run folder from before the weights' hash was recorded
            log.warning("--resume: %s does not record which weights file it started from; it cannot be checked that "
                        "%s is the same file", out, cfg.pretrained)
            record.pop("weights")
        # the same data set may be reached by another path
        diffs = differences(saved, json.loads(json.dumps(record)), line="{key}: saved {a!r}, now {b!r}",
                            ignore=("path",))
        if diffs:
            raise ValueError(
                f"--resume: the run in {out} was started with a different setup:\n  " + "\n  ".join(diffs)
                + "\nresume with the original settings (and data), or choose another --out"
            )
        _check_checkpoints(out, cfg)
        return True
    if resume:
        log.info("--resume: nothing to resume in %s yet, starting a new run", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(config_path, record)
    return False


def _weights_record(cfg: TrainConfig) -> dict:
    """What the backbones start from, by content: the same path may hold other weights later (a shipped backbone
    trained further), and a resumed run or study must not mix models started from two of them."""
    from dualpath.files import file_sha256
    from dualpath.model.weights import resolve_source

    source = resolve_source(cfg.pretrained)
    if source in ("none", "imagenet") or not Path(source).is_file():
        return {"pretrained": cfg.pretrained}
    from dualpath.model.weights import read_model_card

    record = {"pretrained": cfg.pretrained, "sha256": file_sha256(Path(source))}
    card = read_model_card(cfg.pretrained)
    if card is not None:
        record["whole_model"] = True  # every weight, not the backbones only (dualpath.model.build)
        noisy = card.get("held_out", {}).get("noisy", {}) if isinstance(card.get("held_out"), dict) else {}
        log.info("every weight of the model starts from %s: a whole pretrained %s model (%s scenes of pretraining; "
                 "on its held-out scenes: %s)", cfg.pretrained, card["arch"], card.get("scenes_seen"),
                 ", ".join(f"{k} {noisy[k]}" for k in ("macro_map", "accuracy", "ssim") if k in noisy) or "n/a")
    return record


def _check_checkpoints(out: Path, cfg: TrainConfig) -> None:
    """Before anything is trained: every fold's checkpoints that --resume continues from or evaluates are whole and
    this run's own (a last.pt or best.pt copied in from another run is refused, naming the settings that differ)."""
    for fold_dir in sorted(out.glob("fold*")):
        for name in ("last.pt", "best.pt"):
            path = fold_dir / name
            if path.is_file():
                ckpt = ckpt_io.load_checkpoint(path)
                ckpt_io.check_resumable(path, ckpt, cfg.to_dict())


def _data_record(dataset: SceneArrays) -> dict:
    manifest = getattr(dataset, "manifest", None) or {}
    path = getattr(dataset, "path", None)
    return {
        "path": str(path) if path is not None else None,
        "n": int(len(dataset.labels)),
        "seed": manifest.get("seed"),
        "labels_sha256": manifest.get("files", {}).get("labels", {}).get("sha256"),
    }


def _splits(out: Path, cfg: TrainConfig, labels: np.ndarray, env) -> Splits:
    path = out / "splits.json"
    if path.is_file():
        splits = load_splits(path)
        splits.check_matches(labels)
        return splits
    splits = make_splits(
        labels, folds=cfg.folds, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction, seed=cfg.seed
    )
    if env.is_main:
        save_splits(splits, path)
    return splits


@dataclass(frozen=True)
class _Combined:
    """The data set's arrays followed by the extra training scenes' (a SceneArrays)."""

    noisy: np.ndarray
    clean: np.ndarray
    labels: np.ndarray


def with_extra_training_scenes(
    dataset: SceneArrays, splits: Splits, extra: SceneArrays | None, n: int
) -> tuple[SceneArrays, Splits]:
    """Append `n` extra scenes to the arrays and their indices to every fold's training part (never val / test)."""
    if extra is None or len(extra.labels) < n:
        have = 0 if extra is None else len(extra.labels)
        raise ValueError(f"the config asks for {n} extra training scenes but {have} were given")
    base = len(dataset.labels)
    combined = _Combined(*(np.concatenate([getattr(dataset, k), getattr(extra, k)[:n]])
                           for k in ("noisy", "clean", "labels")))
    added = np.arange(base, base + n, dtype=np.int64)
    folds = tuple(Fold(np.concatenate([f.train, added]), f.val) for f in splits.folds)
    return combined, replace(splits, folds=folds)


def evaluate_fold(
    cfg: TrainConfig, result: FoldResult, splits: Splits, dataset: SceneArrays, data: DeviceData, rt: Runtime
) -> FoldEvaluation:
    model, _ = ckpt_io.load_model(result.best_path, rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = MultitaskLoss(cls_loss=cfg.loss, recon_weight=cfg.recon_weight, cls_weight=cfg.cls_weight)
    norm = Normalizer(rt.device, rt.channels_last)
    kw = dict(normalizer=norm, batch_size=cfg.eval_batch_size, amp=False)  # fp32 metrics, as the FP32 export's
    val_pred = predict(model, criterion, data, splits.folds[result.fold].val, keep_recon=True, **kw)
    test_pred = predict(model, criterion, data, splits.test, keep_recon=True, **kw)
    return FoldEvaluation(
        fold=result.fold,
        best_epoch=result.best_epoch,
        val=compute_metrics(val_pred, dataset.labels, dataset.clean),
        test=compute_metrics(test_pred, dataset.labels, dataset.clean),
        test_pred=test_pred,
    )


def summarize(cfg: TrainConfig, evaluations: list[FoldEvaluation], labels: np.ndarray) -> tuple[dict, int]:
    """metrics.json content and the index of the selected fold (best validation select_metric)."""
    selected = 0
    for i, ev in enumerate(evaluations):
        if is_better(ev.val.get(cfg.select_metric), evaluations[selected].val.get(cfg.select_metric), cfg.select_mode):
            selected = i
    best = evaluations[selected]
    test_mean, test_std = mean_std([ev.test for ev in evaluations])
    cv_mean, cv_std = mean_std([ev.val for ev in evaluations])
    y_test = labels[best.test_pred.indices]
    return {
        **test_mean,
        "test_std": test_std,
        "cv_mean": cv_mean,
        "cv_std": cv_std,
        "folds": [
            {"fold": ev.fold, "best_epoch": ev.best_epoch, "val": _keys(ev.val), "test": _keys(ev.test)}
            for ev in evaluations
        ],
        "selected_fold": best.fold,
        "select_metric": cfg.select_metric,
        "checkpoint": "best.pt",
        "selected_test": _keys(best.test),
        "per_class": _plain_rows(metrics.per_class_report(y_test, best.test_pred.probs, contract.CLASS_NAMES)),
        "auc_excluded_classes": best.test.get("auc_excluded_classes", []),
        "n_test": int(len(best.test_pred.indices)),
        "arch": cfg.arch,
        "loss": cfg.loss,
    }, selected


def mean_std(rows: list[dict]) -> tuple[dict, dict]:
    """Per key mean and sample std (ddof=1; 0 with one fold) over folds; None where a fold has no value."""
    mean, std = {}, {}
    for key in METRIC_KEYS:
        values = [r.get(key) for r in rows]
        if any(v is None for v in values):
            mean[key] = std[key] = None
            continue
        mean[key] = float(np.mean(values))
        std[key] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def _keys(m: dict) -> dict:
    return {k: m.get(k) for k in METRIC_KEYS}


def _plain_rows(rows: list[dict]) -> list[dict]:
    def plain(v):
        if isinstance(v, (np.floating, float)):
            return None if np.isnan(v) else float(v)
        return int(v) if isinstance(v, np.integer) else v

    return [{k: plain(v) for k, v in row.items()} for row in rows]


def _finish(cfg, out, dataset, data, splits, results, rt) -> dict:
    evaluations = [evaluate_fold(cfg, r, splits, dataset, data, rt) for r in results]
    summary, selected = summarize(cfg, evaluations, dataset.labels)
    best = evaluations[selected]
    _save_predictions(out / "predictions.npz", best.test_pred)
    report.write_run_report(out, cfg, summary, [r.history for r in results], best.test_pred, dataset)
    # Last, in this order: a run folder with best.pt and metrics.json at the top is a finished run.
    _copy_atomic(results[selected].best_path, out / "best.pt")
    write_json(out / "metrics.json", summary)
    log.info(
        "held-out test (%d scenes, mean of %d fold model(s)): %s; wrote %s",
        summary["n_test"], len(results),
        ", ".join(f"{k} {summary[k]:.4f}" for k in ("accuracy", "macro_map", "macro_auc", "macro_f1", "ssim", "psnr")
                  if summary[k] is not None),
        out / "metrics.json",
    )
    return summary


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _save_predictions(path: Path, pred: Predictions) -> None:
    arrays = {"indices": pred.indices, "probs": pred.probs}
    if pred.recon is not None:
        arrays["recon_uint8"] = contract.recon_to_uint8(pred.recon[:GRID_SCENES])
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def _file_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("train")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the file gets INFO; console handlers keep their own levels
    return handler
