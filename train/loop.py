"""The two-phase training loop of one fold (paper IV.B, pseudocode 1), resumable from its last checkpoint.

Phase 1: pretrained DenseNet backbones frozen except BatchNorm, Adam at phase1_lr. Phase 2: everything trainable,
a fresh Adam at phase2_lr, up to cfg.epochs. After every epoch: validation metrics, last.pt, and best.pt when the
selection metric improves. The step never syncs with the host: losses accumulate on the device and are read
once per epoch, which is also where a NaN / inf loss is caught (before anything is written).
"""
from __future__ import annotations

import csv
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dualpath.metrics import METRIC_KEYS
from dualpath.model import ModelConfig, build_model
from train import checkpoint as ckpt_io
from train.config import TrainConfig
from train.data import DeviceData, Normalizer, SceneArrays, augment_pairs, epoch_batches
from train.distributed import DistEnv, all_reduce_sum
from train.evaluate import LOSS_PARTS, autocast, compute_metrics, is_better, loss_parts, predict
from train.losses import MultitaskLoss
from train.splits import Fold

log = logging.getLogger("train")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the last good checkpoint is left as it was."""


@dataclass(frozen=True)
class Phase:
    number: int  # 1 = frozen backbones, 2 = everything trainable
    first_epoch: int  # 1-based, inclusive
    last_epoch: int
    lr: float

    @property
    def frozen(self) -> bool:
        return self.number == 1


@dataclass(frozen=True)
class Runtime:
    """Where and how the loop runs (resolved from RunOptions)."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    progress: bool = False
    tensorboard: bool = False
    dist: DistEnv = field(default_factory=DistEnv)


@dataclass(frozen=True)
class EpochEnd:
    """Passed to hooks after an epoch's checkpoints are written (tests use it to simulate a kill)."""

    fold: int
    epoch: int
    phase: int
    model: nn.Module
    record: dict


Hook = Callable[[EpochEnd], None]


@dataclass(frozen=True)
class FoldResult:
    fold: int
    best_epoch: int
    best_value: float | None
    best_path: Path
    history: list[dict]


def model_config(cfg: TrainConfig) -> ModelConfig:
    return ModelConfig(arch=cfg.arch, backbone=cfg.backbone, pretrained=cfg.pretrained, **cfg.model_options)


def plan_phases(cfg: TrainConfig, pretrained_loaded: bool) -> list[Phase]:
    """Phase 1 runs only over loaded weights (freezing random features wastes epochs) unless asked to anyway."""
    if cfg.phase1_epochs > 0 and (pretrained_loaded or cfg.phase1_without_pretrained):
        phases = [Phase(1, 1, cfg.phase1_epochs, cfg.phase1_lr)]
        if cfg.epochs > cfg.phase1_epochs:
            phases.append(Phase(2, cfg.phase2_start, cfg.epochs, cfg.phase2_lr))
        return phases
    return [Phase(2, 1, cfg.epochs, cfg.phase2_lr)]


def lr_at(cfg: TrainConfig, phase: Phase, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate of optimisation step `step` (0-based) of `epoch` in `phase`, a pure function of its place in
    the phase, so a resumed run continues the same curve without saving scheduler state."""
    if cfg.lr_schedule == "constant":
        return phase.lr
    total = (phase.last_epoch - phase.first_epoch + 1) * steps_per_epoch
    s = (epoch - phase.first_epoch) * steps_per_epoch + step
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total - 1)
    if s < warmup:
        return phase.lr * (s + 1) / (warmup + 1)
    return cosine_lr(phase.lr, (s - warmup) / max(total - 1 - warmup, 1), cfg.min_lr_fraction)


def cosine_lr(base: float, frac: float, floor: float) -> float:
    """`base` at frac 0, down a half cosine to `floor` x base at frac 1 and after: the decay of both trainers (a
    phase's steps after its warm-up here; pretraining's scenes or minutes in train.pretrain_run)."""
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def describe_plan(cfg: TrainConfig, phases: list[Phase], pretrained_loaded: bool) -> str:
    schedule = "" if cfg.lr_schedule == "constant" else (
        f" ({cfg.lr_schedule}: {cfg.warmup_epochs:g} warm-up epochs, decay to {cfg.min_lr_fraction:g}x)"
    )
    parts = [
        f"phase {p.number}: epochs {p.first_epoch}-{p.last_epoch}, lr {p.lr:g}{schedule}, "
        + ("backbones frozen except BatchNorm" if p.frozen else "everything trainable"
           + (f" (the pretrained backbones at {cfg.backbone_lr_scale:g}x that lr)"
              if cfg.backbone_lr_scale != 1.0 and pretrained_loaded else ""))
        for p in phases
    ]
    if phases[0].number == 2 and cfg.phase1_epochs > 0:
        parts.insert(
            0,
            f"phase 1 skipped: no pretrained weights were loaded (pretrained={cfg.pretrained!r}), and freezing "
            "random backbones would only waste epochs (phase1_without_pretrained=True freezes them anyway)",
        )
    return "; ".join(parts)


def train_fold(
    cfg: TrainConfig,
    fold_index: int,
    fold: Fold,
    arrays: SceneArrays,
    data: DeviceData,
    fold_dir: Path,
    rt: Runtime,
    *,
    resume: bool = False,
    hooks: tuple[Hook, ...] = (),
) -> FoldResult:
    fold_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = fold_dir / "last.pt", fold_dir / "best.pt"
    saved = ckpt_io.load_checkpoint(last_path) if resume and last_path.is_file() else None
    if saved is not None:
        ckpt_io.check_resumable(last_path, saved, cfg.to_dict())  # this run's own, with its loop state whole

    torch.manual_seed(cfg.seed * 1000 + fold_index)  # same initialisation on every process and on a rerun
    model = build_model(model_config(cfg), load_pretrained=saved is None)
    state = _initial_state(model, saved)
    model.pretrained_loaded = state["pretrained_loaded"]
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    phases = plan_phases(cfg, state["pretrained_loaded"])
    criterion = MultitaskLoss(cls_loss=cfg.loss, recon_weight=cfg.recon_weight, cls_weight=cfg.cls_weight)
    if saved is None:
        log.info("fold %d: %s", fold_index, describe_plan(cfg, phases, state["pretrained_loaded"]))
    else:
        log.info("fold %d: resuming after epoch %d of %d", fold_index, saved["epoch"], cfg.epochs)

    loop = _FoldLoop(cfg, fold_index, fold, arrays, data, fold_dir, rt, model, criterion, state, hooks)
    for phase in phases:
        if phase.last_epoch > state["epoch"]:
            loop.run_phase(phase, saved if saved is not None and saved["phase"] == phase.number else None)
    if not best_path.is_file() and rt.dist.is_main:
        log.warning("fold %d: no epoch had a valid %s; best.pt is the last epoch", fold_index, cfg.select_metric)
        ckpt_io.save_checkpoint(ckpt_io.load_checkpoint(last_path), best_path)
    return FoldResult(fold_index, state["best_epoch"], state["best_value"], best_path, state["history"])


def _initial_state(model: nn.Module, saved: dict | None) -> dict:
    if saved is None:
        return {
            "epoch": 0,
            "best_value": None,
            "best_epoch": 0,
            "history": [],
            "pretrained_loaded": bool(model.pretrained_loaded),
        }
    model.load_state_dict(saved["model"])
    state = dict(saved["state"])
    state["epoch"] = saved["epoch"]
    torch.set_rng_state(state.pop("rng_cpu"))
    return state


class _FoldLoop:
    def __init__(self, cfg, fold_index, fold, arrays, data, fold_dir, rt, model, criterion, state, hooks):
        self.cfg, self.fold_index, self.fold, self.arrays, self.data = cfg, fold_index, fold, arrays, data
        self.fold_dir, self.rt, self.model, self.criterion, self.state = fold_dir, rt, model, criterion, state
        self.hooks = hooks
        self.normalizer = Normalizer(rt.device, rt.channels_last)
        self.train_idx = torch.as_tensor(fold.train, dtype=torch.long, device=rt.device)
        self.tb = _tensorboard(fold_dir / "tb") if rt.tensorboard and rt.dist.is_main else None

    def run_phase(self, phase: Phase, saved: dict | None) -> None:
        self.model.set_backbones_frozen(phase.frozen)
        optimizer = torch.optim.Adam(param_groups(self.model, phase, self.cfg.backbone_lr_scale), lr=phase.lr,
                                     weight_decay=self.cfg.weight_decay)
        if saved is not None and saved.get("optimizer") is not None:
            optimizer.load_state_dict(saved["optimizer"])
        step_model = self._wrap(self.model)
        for epoch in range(max(phase.first_epoch, self.state["epoch"] + 1), phase.last_epoch + 1):
            t0 = time.perf_counter()
            train_losses, n_seen = self._train_epoch(step_model, optimizer, phase, epoch)
            if not all(math.isfinite(v) for v in train_losses.values()):
                raise NonFiniteLossError(self._nonfinite_message(epoch, train_losses))
            seconds = time.perf_counter() - t0
            record = self._end_epoch(epoch, phase, optimizer, train_losses, n_seen / seconds, seconds)
            for hook in self.hooks:
                hook(EpochEnd(self.fold_index, epoch, phase.number, self.model, record))

    def _nonfinite_message(self, epoch: int, losses: dict) -> str:
        kept = (
            f"The last good checkpoint ({self.fold_dir / 'last.pt'}, epoch {self.state['epoch']}) is kept"
            if self.state["epoch"] else "No checkpoint was written"
        )
        return (
            f"fold {self.fold_index} epoch {epoch}: the training loss became {losses['total']} (recon "
            f"{losses['recon']}, cls {losses['cls']}); stopped. {kept}. Try a lower learning rate (--lr1 / --lr2) "
            "or --no-amp, or check the data set."
        )

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.rt.dist.enabled:
            device_ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return torch.compile(model) if self.rt.compile else model

    def _train_epoch(self, step_model: nn.Module, optimizer: torch.optim.Optimizer, phase: Phase, epoch: int):
        rt, data, norm = self.rt, self.data, self.normalizer
        batches = epoch_batches(
            self.train_idx, self.cfg.batch_size, seed=self.cfg.seed * 1000 + self.fold_index, epoch=epoch,
            rank=rt.dist.rank, world_size=rt.dist.world_size,
        )
        step_model.train()
        sums = torch.zeros(len(LOSS_PARTS) + 1, device=rt.device)  # loss parts * batch size, then the count
        bar = _bar(len(batches), f"fold {self.fold_index} epoch {epoch}/{self.cfg.epochs}", rt)
        for step, idx in enumerate(batches):
            set_lr(optimizer, lr_at(self.cfg, phase, epoch, step, len(batches)))
            sums[:-1] += train_step(
                step_model, self.criterion, optimizer, data, idx, norm, rt.amp, augment=self.cfg.augment
            ) * idx.shape[0]
            sums[-1] += idx.shape[0]
            bar.update()
        all_reduce_sum(sums, rt.dist)
        values = sums.tolist()  # the one host sync of the epoch
        means = {k: v / max(values[-1], 1.0) for k, v in zip(LOSS_PARTS, values)}
        bar.set_postfix(loss=f"{means['total']:.4f}")
        bar.close()
        return means, values[-1]

    def _end_epoch(self, epoch, phase, optimizer, train_losses, images_per_s, seconds) -> dict:
        cfg, state = self.cfg, self.state
        record = {"epoch": epoch, "phase": phase.number, "lr": optimizer.param_groups[0]["lr"]}  # its last step's
        record.update({f"train_{k}": v for k, v in train_losses.items()})
        if self.rt.dist.is_main:
            pred = predict(
                self.model, self.criterion, self.data, self.fold.val, normalizer=self.normalizer,
                batch_size=cfg.eval_batch_size, amp=False,  # metrics in fp32, as the exported FP32 model computes
            )
            val = compute_metrics(pred, self.arrays.labels, self.arrays.clean)
            record.update({f"val_{k}": v for k, v in pred.losses.items()})
            record.update({f"val_{k}": val.get(k) for k in METRIC_KEYS})
        record.update(seconds=round(seconds, 3), images_per_s=round(images_per_s, 1))
        state["epoch"] = epoch
        state["history"].append(record)
        improved = is_better(record.get(f"val_{cfg.select_metric}"), state["best_value"], cfg.select_mode)
        if improved:
            state["best_value"], state["best_epoch"] = record[f"val_{cfg.select_metric}"], epoch
        if self.rt.dist.is_main:
            self._write(epoch, phase, optimizer, record, improved)
        log.info(_epoch_line(self.fold_index, cfg, record, improved))
        return record

    def _write(self, epoch, phase, optimizer, record, improved) -> None:
        state = {**self.state, "rng_cpu": torch.get_rng_state()}
        metrics = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
        ckpt = ckpt_io.make_checkpoint(
            self.model, train_config=self.cfg.to_dict(), epoch=epoch, phase=phase.number, metrics=metrics,
            optimizer=optimizer, state=state,
        )
        ckpt_io.save_checkpoint(ckpt, self.fold_dir / "last.pt")
        if improved:
            ckpt_io.save_checkpoint(ckpt, self.fold_dir / "best.pt")
        write_csv(self.state["history"], self.fold_dir / "log.csv")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, float) and key not in ("lr",):
                    self.tb.add_scalar(key, value, epoch)
            self.tb.flush()


def train_step(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DeviceData,
    idx: torch.Tensor,
    normalizer: Normalizer,
    amp: bool,
    augment: str = "none",
) -> torch.Tensor:
    """One optimisation step on the scenes `idx` (on the device); returns the loss parts, still on the device.

    The augmentation draws from torch's global CPU generator, whose state every checkpoint saves (resume-exact)."""
    noisy, clean = augment_pairs(data.noisy[idx], data.clean[idx], augment)
    x = normalizer.inputs(noisy)
    target = normalizer.targets(clean)
    with autocast(x.device, amp):
        out = model(x)
        total, parts = criterion(out, target, data.labels[idx].float())
    optimise(optimizer, total)
    return loss_parts(parts, x.device)


def param_groups(model, phase: Phase, backbone_lr_scale: float) -> list[dict]:
    """The trainable parameters as Adam's groups: in phase 2 with a scale below 1, pretrained DenseNet backbones' group
    learns at that fraction of the phase's rate (its "lr_scale", which set_lr keeps) and the rest at the rate.
    Backbones from random init (model.pretrained_loaded False) have nothing to keep: one group, one rate."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if phase.frozen or backbone_lr_scale == 1.0 or not model.pretrained_loaded:
        return [{"params": trainable}]
    in_backbones = {id(p) for b in model.backbones() for p in b.parameters()}
    return [{"params": [p for p in trainable if id(p) not in in_backbones]},
            {"params": [p for p in trainable if id(p) in in_backbones], "lr_scale": backbone_lr_scale}]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The learning rate of the next step (the schedules are pure functions of the step's place: lr_at), times a
    group's "lr_scale" where it has one (param_groups)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def optimise(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """The optimisation step of both trainers (train_step; train.pretrain_run.train_chunk): gradients of `loss`
    alone, then one optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def write_csv(history: list[dict], path: Path) -> None:
    """Rewritten whole each epoch from the checkpointed history, so it always agrees with last.pt."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


def _epoch_line(fold: int, cfg: TrainConfig, r: dict, improved: bool) -> str:
    line = (
        f"fold {fold} epoch {r['epoch']}/{cfg.epochs} (phase {r['phase']}, lr {r['lr']:g}): "
        f"train loss {r['train_total']:.4f} (recon {r['train_recon']:.4f}, cls {r['train_cls']:.4f})"
    )
    if "val_total" in r:
        shown = [f"{k} {_fmt(r.get('val_' + k))}" for k in ("macro_map", "accuracy", "macro_auc", "ssim", "psnr")]
        line += f" | val loss {r['val_total']:.4f}, " + ", ".join(shown)
    line += f" | {r['seconds']:.1f} s, {r['images_per_s']:.0f} img/s"
    return line + (" *best*" if improved else "")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _bar(total: int, desc: str, rt: Runtime):
    from tqdm.auto import tqdm

    enabled = rt.progress and rt.dist.is_main and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)


def _tensorboard(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the CSV log has the same numbers
        return None
    return SummaryWriter(str(path))
