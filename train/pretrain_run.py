"""The run of `python -m train pretrain` (train.pretrain: the command): a DenseNetBackbone + a 20-way head trained
chunk by chunk on the scene stream (train.pretrain_stream) with the training loop's cosine (train.loop.cosine_lr, here
from lr to 5% of it by scenes or by time) and its optimisation step (train.loop.optimise); an atomic checkpoint
(pretrain.pt) after chunks, the held-out metrics at the end, then backbone.pth and its card backbone.json.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dualpath.model.config import BACKBONES
from dualpath.model.weights import CARD_FORMAT
from train.loop import NonFiniteLossError, cosine_lr, optimise, set_lr
from train.pretrain_card import card_fields, init_seen
from train.pretrain_stream import ChunkSource, PretrainConfig, chunk_seed

log = logging.getLogger("train")

WEIGHTS_NAME, CARD_NAME, CHECKPOINT_NAME = "backbone.pth", "backbone.json", "pretrain.pt"
MIN_LR_FRACTION = 0.05  # the cosine ends at 5% of --lr


class SceneClassifier(nn.Module):
    """DenseNetBackbone + a linear 20-way head on GAP(ReLU(features)): torchvision's DenseNet classifier."""

    def __init__(self, backbone: str, stem: str) -> None:
        super().__init__()
        from dualpath.contract import NUM_CLASSES
        from dualpath.model import DenseNetBackbone

        self.backbone_name = backbone
        self.backbone = DenseNetBackbone(BACKBONES[backbone], stem)
        self.head = nn.Linear(self.backbone.out_width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(x))  # (N, 20) logits


# --- training -----------------------------------------------------------------------------------------------------


@dataclass
class Progress:
    chunks_done: int = 0
    scenes_seen: int = 0
    train_s: float = 0.0  # wall seconds of training so far (all sessions of a resumed run)
    wait_s: float = 0.0  # of which waiting for scenes
    last_loss: float | None = None


def lr_at(cfg: PretrainConfig, scenes_seen: int, elapsed_s: float) -> float:
    """Cosine from cfg.lr to 5% of it over the run: by scenes seen, or by time with --budget-minutes."""
    if cfg.scenes is not None:
        frac = scenes_seen / (cfg.max_chunks * cfg.chunk)
    else:
        frac = elapsed_s / (60 * cfg.budget_minutes)
    return cosine_lr(cfg.lr, frac, MIN_LR_FRACTION)


def chunk_loss(model, norm, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The classifier's loss on a batch (a: the noisy scenes, b: the clean ones, augmented alike): BCE on either at
    random, both kinds of image a backbone meets in the models (noisy inputs, clean(ed) reconstructions)."""
    pick = (torch.rand(len(a)) < 0.5).to(a.device).view(-1, 1, 1, 1)
    return nn.functional.binary_cross_entropy_with_logits(model(norm.inputs(torch.where(pick, a, b))).float(), labels)


def train_chunk(model, optimizer, arrays, cfg: PretrainConfig, p: Progress, rt, t_start: float, bar,
                loss_of=chunk_loss) -> None:
    """One pass over a chunk: loss_of(model, normalizer, noisy, clean, labels) per batch (this module's chunk_loss,
    or train.pretrain_dualpath's), under the run's autocast, at the cosine's rate of the moment."""
    from train.data import Normalizer, augment_pairs
    from train.evaluate import autocast

    device = rt.device
    noisy, clean = (torch.from_numpy(np.ascontiguousarray(arrays[k])).to(device) for k in ("noisy", "clean"))
    labels = torch.from_numpy(arrays["labels"]).to(device).float()
    norm = Normalizer(device, rt.channels_last)
    total = torch.zeros((), device=device)
    order = torch.randperm(len(labels)).to(device)
    for i, idx in enumerate(torch.split(order, cfg.batch_size)):
        set_lr(optimizer, lr_at(cfg, p.scenes_seen + i * cfg.batch_size, p.train_s + time.perf_counter() - t_start))
        a, b = augment_pairs(noisy[idx], clean[idx], cfg.augment)
        with autocast(device, rt.amp):
            loss = loss_of(model, norm, a, b, labels[idx])
        optimise(optimizer, loss)
        total += loss.detach() * len(idx)
        if bar is not None:
            bar.update(len(idx))
    p.last_loss = float(total) / len(labels)
    if not math.isfinite(p.last_loss):
        raise NonFiniteLossError(f"the pretraining loss became {p.last_loss} in chunk {p.chunks_done + 1}; "
                                 "lower --lr and --resume (the last checkpoint is the previous chunk's)")


@torch.no_grad()
def evaluate(model, arrays, rt, batch_size: int = 256) -> dict:
    from dualpath.contract import CLASS_NAMES
    from dualpath.metrics import multilabel_metrics, per_class_report
    from train.data import Normalizer
    from train.evaluate import autocast

    model.eval()
    norm, scores = Normalizer(rt.device, rt.channels_last), []
    noisy, clean = (torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in ("noisy", "clean"))
    out = {}
    for name, images in (("noisy", noisy), ("clean", clean)):
        scores = []
        for batch in torch.split(images, batch_size):
            with autocast(rt.device, rt.amp):
                scores.append(torch.sigmoid(model(norm.inputs(batch.to(rt.device))).float()).cpu())
        scores = torch.cat(scores).numpy()
        m = multilabel_metrics(arrays["labels"], scores)
        out[name] = {k: round(float(m[k]), 4) for k in ("macro_map", "accuracy", "macro_auc", "micro_f1")}
        out[name]["per_class_ap"] = {row["name"]: None if row["ap"] is None else round(row["ap"], 4)
                                     for row in per_class_report(arrays["labels"], scores, CLASS_NAMES)}
    model.train()
    return out


# --- warm start ---------------------------------------------------------------------------------------------------

# What a warm start may leave at its initialisation: the stem's conv (a 7x7 one does not fit --stem 3x3) and the head
# (a backbone.pth has none). Anything else that does not fit means the weights are of another backbone size.
_MAY_START_FRESH = ("backbone.features.conv0.", "head.")


def warm_start(model: SceneClassifier, source: str) -> dict:
    """Copy the tensors of `source` that fit `model` by name and shape: a pretrain.pt (the whole classifier) or a
    DenseNet state dict such as weights/<name>/backbone.pth (the backbone). Returns the card's "init" record."""
    from dualpath.files import file_sha256
    from dualpath.model.weights import load_weights, read_card, resolve_source

    path = Path(resolve_source(source))
    if not path.is_file():
        raise ValueError(f"--init {source}: no such file; pass a backbone.pth (weights/<name>/backbone.pth) or a "
                         "pretrain.pt of an earlier `python -m train pretrain`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn or foreign file
        raise ValueError(f"--init {source}: cannot read it as a torch file ({err})") from err
    if isinstance(ckpt, dict) and isinstance(ckpt.get("pretrain_config"), dict):
        _check_state(path, ckpt)
        state, seen = dict(ckpt["model"]), ckpt["progress"]["scenes_seen"] + init_seen(ckpt.get("init"))
    else:
        state = {f"backbone.{k}": v for k, v in load_weights(str(path)).items()}
        card = read_card(str(path))
        seen = card["scenes_seen"] + init_seen(card.get("init")) if card and "scenes_seen" in card else None
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    fresh = sorted(k for k in own if k not in fits and not k.endswith(".num_batches_tracked"))
    alien = sorted(k for k in state if k not in fits)
    unfit = [k for k in fresh + alien if not k.startswith(_MAY_START_FRESH)]
    if unfit:
        raise ValueError(f"--init {source} does not fit backbone {model.backbone_name!r}: {len(unfit)} tensors have no "
                         f"match by name and shape (e.g. {unfit[0]}); pass --backbone of the size the weights were "
                         "made for")
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in fits.items()}})
    # scenes_seen: every scene behind the weights, a chain of warm starts included
    record = {"from": str(source), "sha256": file_sha256(path), "scenes_seen": seen, "fresh": fresh}
    log.info("warm start from %s (%s scenes seen): %d tensors copied, fresh: %s", source, seen, len(fits),
             ", ".join(fresh) or "none")
    return record


# --- checkpoints and outputs --------------------------------------------------------------------------------------


def save_state(path: Path, cfg: PretrainConfig, model, optimizer, p: Progress, init: dict | None = None) -> None:
    from train.checkpoint import save_checkpoint

    save_checkpoint({"pretrain_config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "progress": asdict(p), "torch_rng": torch.get_rng_state(), "init": init}, path)


def load_state(path: Path, cfg: PretrainConfig, model, optimizer) -> tuple[Progress, dict | None]:
    """The run's progress and its warm start's record (None without --init), the weights loaded into model/optimizer."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn or foreign file
        raise ValueError(f"cannot read {path} ({err}); remove it to start over") from err
    saved = ckpt.get("pretrain_config") if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not a pretraining checkpoint; remove it or pass another --out")
    _check_state(path, ckpt)
    # what was trained: --scenes / --budget-minutes may grow a run, and --generate is how scenes are made
    fixed = ("model", "backbone", "stem", "chunk", "held_out", "batch_size", "augment", "seed", "lr", "init",
             "backbone_lr_scale", "first_chunk")
    was = {k: saved.get(k, _FIELD_DEFAULTS[k]) for k in fixed}  # a field added since: what it was then
    changed = [f"{k} {was[k]!r} (saved) vs {getattr(cfg, k)!r}" for k in fixed if was[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"{path} is a run of another configuration ({'; '.join(changed)}): resume it with its own "
                         "flags, or pass another --out")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    return Progress(**ckpt["progress"]), ckpt.get("init")


def _check_state(path: Path, ckpt: dict) -> None:
    """pretrain.pt against its schema (what load_state reads): ValueError naming the file and the field."""
    import dataclasses

    def bad(field: str, value, wanted: str) -> ValueError:
        shown = "missing" if value is _MISSING else f"{type(value).__name__} {repr(value)[:40]}"
        return ValueError(f"{path}: field {field} is {shown}, {wanted} belongs there; it is not a usable pretraining "
                          "checkpoint: remove it to start over, or pass another --out")

    for key in ("model", "optimizer"):
        if not isinstance(ckpt.get(key, _MISSING), dict):
            raise bad(key, ckpt.get(key, _MISSING), "an object (a state dict)")
    rng = ckpt.get("torch_rng", _MISSING)
    if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8:
        raise bad("torch_rng", rng, "a uint8 tensor (torch.get_rng_state())")
    progress = ckpt.get("progress", _MISSING)
    if not isinstance(progress, dict):
        raise bad("progress", progress, "an object")
    for f in dataclasses.fields(Progress):
        value = progress.get(f.name, _MISSING)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = (isinstance(value, int) and not isinstance(value, bool)) if f.type in ("int", int) else (
            number or (value is None and "None" in str(f.type)))
        if not ok:
            raise bad(f"progress.{f.name}", value, "an integer" if f.type in ("int", int) else "a number")
    unknown = sorted(set(progress) - {f.name for f in dataclasses.fields(Progress)})
    if unknown:
        raise bad(f"progress.{unknown[0]}", progress[unknown[0]], "no such field")


_MISSING = object()
# PretrainConfig's defaults, for the fields a checkpoint saved before they existed lacks
_FIELD_DEFAULTS = {f.name: f.default for f in fields(PretrainConfig)}


def write_outputs(out: Path, cfg: PretrainConfig, model, p: Progress, held_out: dict, half: bool, argv,
                  init: dict | None = None) -> dict:
    from dualpath.files import atomic_path, write_json

    state = {f"features.{k}": v for k, v in model.backbone.features.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    weights = out / WEIGHTS_NAME
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    card = {"format": CARD_FORMAT, **card_fields(cfg, p, held_out, half, argv, init, weights)}
    write_json(out / CARD_NAME, card)
    return card


def model_kind(model: str):
    """The module that builds, trains (chunk_loss), scores and writes a --model: this one for the classifier,
    train.pretrain_dualpath for the whole dual-path model."""
    if model == "dualpath":
        from train import pretrain_dualpath

        return pretrain_dualpath
    return sys.modules[__name__]


def build(cfg: PretrainConfig) -> tuple[SceneClassifier, dict | None]:
    """The classifier at its initialisation, and the warm start's record (None without --init)."""
    model = SceneClassifier(cfg.backbone, cfg.stem)
    return model, warm_start(model, cfg.init) if cfg.init else None


def make_optimizer(model, cfg: PretrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


# --- the run ------------------------------------------------------------------------------------------------------


def run(cfg: PretrainConfig, out: Path, opts, resume: bool, half: bool, argv: Sequence[str], workers: int,
        checkpoint_minutes: float) -> dict:
    """The run in `out` (train.pretrain.run_pretrain checks the seeds and holds the lock); returns the card."""
    from train.distributed import DistEnv
    from train.experiment import resolve_runtime

    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT_NAME
    if ckpt.exists() and not resume:
        raise ValueError(f"{out} holds a pretraining run: pass --resume to continue it, or another --out")
    rt = resolve_runtime(opts, DistEnv())
    if opts.threads:
        torch.set_num_threads(opts.threads)
    torch.manual_seed(cfg.seed)
    resuming = resume and ckpt.exists()
    kind = model_kind(cfg.model)
    model, init = kind.build(replace(cfg, init=None) if resuming else cfg)  # resuming: the checkpoint's weights
    model.to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = kind.make_optimizer(model, cfg)
    p, init = load_state(ckpt, cfg, model, optimizer) if resuming else (Progress(), init)
    log.info("pretraining %s %s (stem %s) on %s, chunks of %d scenes from seed %d; %s", cfg.model, cfg.backbone,
             cfg.stem, rt.device, cfg.chunk, chunk_seed(cfg.first_chunk),
             f"{cfg.scenes} scenes" if cfg.scenes else f"{cfg.budget_minutes} min")
    source = ChunkSource(cfg, out / "chunks", workers)
    source.prefetch(0)  # the held-out chunk first: at the end it would wait behind a prefetched training chunk
    try:
        _train_chunks(cfg, model, optimizer, p, source, rt, ckpt, opts.progress, 60 * checkpoint_minutes, init, kind)
        held_out = kind.evaluate(model, source.get(0), rt)
    finally:
        source.close()
    log.info("held-out (%d scenes, seed %d): %s", cfg.held_out, chunk_seed(0), held_out)
    return kind.write_outputs(out, cfg, model, p, held_out, half, argv, init)


def _train_chunks(cfg, model, optimizer, p: Progress, source: ChunkSource, rt, ckpt: Path, progress: bool,
                  every_s: float, init: dict | None, kind) -> None:
    """Chunks until --scenes or the budget is reached; a checkpoint every `every_s` seconds and at the end (kind: this
    module for --model classifier, train.pretrain_dualpath for dualpath: its chunk_loss)."""
    from tqdm import tqdm

    model.train()
    saved_at, saved_chunks = time.perf_counter(), p.chunks_done
    total = cfg.max_chunks * cfg.chunk if cfg.scenes is not None else None
    bar = tqdm(total=total, initial=p.scenes_seen, unit="scene", desc="pretrain",
               disable=not progress or not sys.stderr.isatty())
    try:
        while p.chunks_done < cfg.max_chunks and not _budget_spent(cfg, p):
            i = p.chunks_done + 1  # the run's i-th chunk: the stream's chunk k
            k = cfg.train_chunk(i)
            t0 = time.perf_counter()
            wait0 = source.wait_s
            arrays = source.get(k, prefetch=k + 1 if i < cfg.max_chunks else None)
            train_chunk(model, optimizer, arrays, cfg, p, rt, t0, bar, kind.chunk_loss)
            source.done_with(k)
            p.chunks_done, p.scenes_seen = i, p.scenes_seen + len(arrays["labels"])
            p.train_s += time.perf_counter() - t0
            p.wait_s += source.wait_s - wait0
            if time.perf_counter() - saved_at >= every_s:
                save_state(ckpt, cfg, model, optimizer, p, init)
                saved_at, saved_chunks = time.perf_counter(), p.chunks_done
            log.info("chunk %d (seed %d): loss %.4f, %d scenes, %.0f s (%.1f s waiting for scenes)", k, chunk_seed(k),
                     p.last_loss, p.scenes_seen, p.train_s, p.wait_s)
        if p.chunks_done != saved_chunks:
            save_state(ckpt, cfg, model, optimizer, p, init)
    finally:
        bar.close()


def _budget_spent(cfg: PretrainConfig, p: Progress) -> bool:
    return cfg.budget_minutes is not None and p.train_s >= 60 * cfg.budget_minutes
