"""`python -m train pretrain`: a scene-pretrained DenseNet, the offline stand-in for ImageNet weights.

The backbone the models use (dualpath.model.DenseNetBackbone: torchvision's DenseNet class) plus a 20-way linear head
learns the 20 labels (BCE) on a stream of generated scenes, chunk by chunk: chunk k is scenes 0..chunk-1 of seed
PRETRAIN_SEED_START + k, chunk 0 is the held-out set, and chunk k+1 is rendered while chunk k trains (a worker
process, or chunks written to disk first with --generate disk). After every chunk: an atomic checkpoint (--resume
continues after it). At the end: the held-out metrics, OUT/backbone.pth (a torchvision state dict, keys
`features.*`: what --weights loads) and OUT/backbone.json, its card.

Exit codes: 0 done, 1 the loss became NaN/inf, 2 bad arguments or inputs, 130 interrupted (--resume continues).
"""
from __future__ import annotations

import argparse
import logging
import math
import shlex
import shutil
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from dualpath.machine import describe as describe_machine
from dualpath.model.config import BACKBONES, STEMS
from dualpath.model.weights import CARD_FORMAT
from dualpath.seeds import PRETRAIN_SEED_END, PRETRAIN_SEED_START, check_stream_above_every_set

log = logging.getLogger("train")

WEIGHTS_NAME, CARD_NAME, CHECKPOINT_NAME = "backbone.pth", "backbone.json", "pretrain.pt"


def check_seeds_disjoint() -> None:
    """The pretraining seeds lie above every seed the project uses elsewhere (dualpath.seeds)."""
    check_stream_above_every_set(PRETRAIN_SEED_START, PRETRAIN_SEED_END)


@dataclass(frozen=True)
class PretrainConfig:
    backbone: str = "densenet_small"  # a key of dualpath.model.BACKBONES
    stem: str = "imagenet"  # one of dualpath.model.config.STEMS
    scenes: int | None = None  # training scenes to see (rounded up to whole chunks); None: --budget-minutes decides
    budget_minutes: float | None = None  # wall-clock budget of training (the held-out evaluation comes after)
    chunk: int = 2000  # scenes per chunk (one seed each); ~50 MB of uint8 arrays (noisy + clean) at 64x64
    held_out: int = 1000  # scenes of chunk 0, never trained on
    batch_size: int = 64
    lr: float = 1e-3  # Adam; cosine decay to 5% over the run (by scenes or by time, whichever is further)
    augment: str = "dihedral"  # train.data.augment_pairs
    generate: str = "worker"  # "worker": a process renders chunk k+1 beside training | "disk": generate_dataset first
    seed: int = 0  # initialisation and shuffling (not the scenes: those are the seed stream's)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"--backbone must be one of {', '.join(BACKBONES)}; got {self.backbone!r}")
        if self.stem not in STEMS:
            raise ValueError(f"--stem must be one of {', '.join(STEMS)}; got {self.stem!r}")
        if (self.scenes is None) == (self.budget_minutes is None):
            raise ValueError("pass one of --scenes N or --budget-minutes M to size the run")
        for name in ("chunk", "held_out", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.scenes is not None and self.scenes < 1 or self.budget_minutes is not None and self.budget_minutes <= 0:
            raise ValueError("--scenes / --budget-minutes must be positive")
        if self.generate not in ("worker", "disk"):
            raise ValueError(f"--generate must be 'worker' or 'disk'; got {self.generate!r}")

    @property
    def max_chunks(self) -> int:
        """Training chunks at most (by --scenes; a time budget stops earlier)."""
        if self.scenes is not None:
            return math.ceil(self.scenes / self.chunk)
        return PRETRAIN_SEED_END - PRETRAIN_SEED_START - 1


def chunk_seed(k: int) -> int:
    """Seed of chunk k (0: the held-out chunk)."""
    seed = PRETRAIN_SEED_START + k
    if not PRETRAIN_SEED_START <= seed < PRETRAIN_SEED_END:
        raise ValueError(f"chunk {k} lies outside the pretraining seed range")
    return seed


class SceneClassifier(nn.Module):
    """DenseNetBackbone + a linear 20-way head on GAP(ReLU(features)): torchvision's DenseNet classifier."""

    def __init__(self, backbone: str, stem: str) -> None:
        super().__init__()
        from dualpath.contract import NUM_CLASSES
        from dualpath.model import DenseNetBackbone

        self.backbone = DenseNetBackbone(BACKBONES[backbone], stem)
        self.head = nn.Linear(self.backbone.out_width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.embed(x))  # (N, 20) logits


# --- scenes -------------------------------------------------------------------------------------------------------


class ChunkSource:
    """Chunks in order; the next one is made while the current one trains (generate="worker"), or each is generated
    into a data set folder under `root` when asked for (generate="disk"; reused when already there)."""

    def __init__(self, cfg: PretrainConfig, root: Path, workers: int = 1) -> None:
        self.cfg, self.root, self.workers = cfg, root, workers
        worker = cfg.generate == "worker"
        from dualpath.processes import ignore_interrupts_in_worker

        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                        initializer=ignore_interrupts_in_worker) if worker else None
        self.pending: dict[int, list[Future]] = {}
        self.wait_s = 0.0  # time training waited for scenes

    def get(self, k: int, prefetch: int | None = None) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        arrays = self._make(k)
        if prefetch is not None:
            self.prefetch(prefetch)
        self.wait_s += time.perf_counter() - t0
        return arrays

    def prefetch(self, k: int) -> None:
        """Start rendering chunk k in the workers (no-op on disk)."""
        if self.pool is not None and k not in self.pending:
            self.pending[k] = self._submit(k, self.cfg.held_out if k == 0 else self.cfg.chunk)

    def done_with(self, k: int) -> None:
        """Free chunk k's disk space (a long run sees thousands of chunks); the held-out chunk stays."""
        if self.pool is None and k != 0:
            shutil.rmtree(self.root / f"chunk{k:06d}", ignore_errors=True)

    def _make(self, k: int) -> dict[str, np.ndarray]:
        n = self.cfg.held_out if k == 0 else self.cfg.chunk
        if self.pool is None:
            from dualpath.scenes import SceneConfig, generate_dataset

            ds = generate_dataset(SceneConfig(), chunk_seed(k), n, self.root / f"chunk{k:06d}", workers=self.workers,
                                  progress=False)
            return {"noisy": ds.noisy, "clean": ds.clean, "labels": ds.labels}
        parts = [f.result() for f in self.pending.pop(k, None) or self._submit(k, n)]
        return {key: np.concatenate([part[key] for part in parts]) for key in ("noisy", "clean", "labels")}

    def _submit(self, k: int, n: int) -> list[Future]:
        """Scenes 0..n-1 of chunk k as one task per worker."""
        from train.pretrain_scenes import render_images

        bounds = np.linspace(0, n, min(self.workers, n) + 1).astype(int)
        return [self.pool.submit(render_images, chunk_seed(k), int(a), int(b)) for a, b in zip(bounds, bounds[1:])]

    def close(self) -> None:
        """Workers ended now (a prefetched chunk is not waited for; an interrupted run leaves none behind)."""
        from dualpath.processes import stop_pool

        stop_pool(self.pool)


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
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))


def train_chunk(model, optimizer, arrays, cfg: PretrainConfig, p: Progress, rt, t_start: float, bar) -> None:
    from train.data import Normalizer, augment_pairs
    from train.evaluate import autocast
    from train.loop import NonFiniteLossError

    device = rt.device
    noisy, clean = (torch.from_numpy(np.ascontiguousarray(arrays[k])).to(device) for k in ("noisy", "clean"))
    labels = torch.from_numpy(arrays["labels"]).to(device).float()
    norm, criterion = Normalizer(device, rt.channels_last), nn.BCEWithLogitsLoss()
    total = torch.zeros((), device=device)
    order = torch.randperm(len(labels)).to(device)
    for i, idx in enumerate(torch.split(order, cfg.batch_size)):
        lr = lr_at(cfg, p.scenes_seen + i * cfg.batch_size, p.train_s + time.perf_counter() - t_start)
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Both kinds of image a backbone meets in the models: noisy inputs and clean(ed) reconstructions.
        a, b = augment_pairs(noisy[idx], clean[idx], cfg.augment)
        pick = (torch.rand(len(idx)) < 0.5).to(device).view(-1, 1, 1, 1)
        with autocast(device, rt.amp):
            loss = criterion(model(norm.inputs(torch.where(pick, a, b))).float(), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(idx)
        if bar is not None:
            bar.update(len(idx))
    p.last_loss = float(total) / len(labels)
    if not math.isfinite(p.last_loss):
        raise NonFiniteLossError(f"the pretraining loss became {p.last_loss} in chunk {p.chunks_done + 1}; "
                                 "lower --lr and --resume (the last checkpoint is the previous chunk's)")


@torch.no_grad()
def evaluate(model, arrays, rt, batch_size: int = 256) -> dict:
    from dualpath.metrics import multilabel_metrics
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
        m = multilabel_metrics(arrays["labels"], torch.cat(scores).numpy())
        out[name] = {k: round(float(m[k]), 4) for k in ("macro_map", "accuracy", "macro_auc", "micro_f1")}
    model.train()
    return out


# --- checkpoints and outputs --------------------------------------------------------------------------------------


def save_state(path: Path, cfg: PretrainConfig, model, optimizer, p: Progress) -> None:
    from train.checkpoint import save_checkpoint

    save_checkpoint({"pretrain_config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "progress": asdict(p), "torch_rng": torch.get_rng_state()}, path)


def load_state(path: Path, cfg: PretrainConfig, model, optimizer) -> Progress:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn or foreign file
        raise ValueError(f"cannot read {path} ({err}); remove it to start over") from err
    saved = ckpt.get("pretrain_config") if isinstance(ckpt, dict) else None
    if not isinstance(saved, dict):
        raise ValueError(f"{path} is not a pretraining checkpoint; remove it or pass another --out")
    _check_state(path, ckpt)
    # what was trained: --scenes / --budget-minutes may grow a run, and --generate is how scenes are made
    fixed = ("backbone", "stem", "chunk", "held_out", "batch_size", "augment", "seed", "lr")
    changed = [f"{k} {saved.get(k, '(none)')!r} (saved) vs {getattr(cfg, k)!r}" for k in fixed
               if saved.get(k) != getattr(cfg, k)]
    if changed:
        raise ValueError(f"{path} is a run of another configuration ({'; '.join(changed)}): resume it with its own "
                         "flags, or pass another --out")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    return Progress(**ckpt["progress"])


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


def write_outputs(out: Path, cfg: PretrainConfig, model, p: Progress, held_out: dict, half: bool, argv) -> dict:
    from dualpath.files import atomic_path, file_sha256, write_json

    state = {f"features.{k}": v for k, v in model.backbone.features.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    weights = out / WEIGHTS_NAME
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    card = {
        "format": CARD_FORMAT,
        "backbone": cfg.backbone, "stem": cfg.stem, "spec": asdict(BACKBONES[cfg.backbone]),
        "dtype": "float16" if half else "float32",
        "scenes_seen": p.scenes_seen, "chunks": p.chunks_done, "chunk_scenes": cfg.chunk,
        "seed_range": {"train": [chunk_seed(1), chunk_seed(max(p.chunks_done, 1))], "held_out": chunk_seed(0),
                       "scenes_per_seed": "0..chunk-1 of each seed"},
        "held_out": {"scenes": cfg.held_out, "seed": chunk_seed(0), **held_out},
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("backbone", "stem")},
        "final_train_loss": p.last_loss,
        "wall_s": round(p.train_s, 1), "waited_for_scenes_s": round(p.wait_s, 1),
        "command": "python -m train pretrain " + shlex.join(argv),
        "machine": {**describe_machine(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "weights_file": WEIGHTS_NAME, "weights_sha256": file_sha256(weights),
    }
    write_json(out / CARD_NAME, card)
    return card


# --- the run ------------------------------------------------------------------------------------------------------


def run_pretrain(cfg: PretrainConfig, out: Path, opts, resume: bool = False, half: bool = False,
                 argv: Sequence[str] = (), workers: int = 1, checkpoint_minutes: float = 0.0) -> dict:
    from dualpath.files import folder_lock

    check_seeds_disjoint()
    with folder_lock(out, "pretraining"):  # one writer per run folder
        return _run_pretrain(cfg, out, opts, resume, half, argv, workers, checkpoint_minutes)


def _run_pretrain(cfg: PretrainConfig, out: Path, opts, resume: bool, half: bool, argv: Sequence[str], workers: int,
                  checkpoint_minutes: float) -> dict:
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
    model = SceneClassifier(cfg.backbone, cfg.stem).to(rt.device)
    if rt.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    p = load_state(ckpt, cfg, model, optimizer) if resume and ckpt.exists() else Progress()
    log.info("pretraining %s (stem %s) on %s, chunks of %d scenes from seed %d; %s", cfg.backbone, cfg.stem,
             rt.device, cfg.chunk, chunk_seed(1), f"{cfg.scenes} scenes" if cfg.scenes else f"{cfg.budget_minutes} min")
    source = ChunkSource(cfg, out / "chunks", workers)
    source.prefetch(0)  # the held-out chunk first: at the end it would wait behind a prefetched training chunk
    try:
        _train_chunks(cfg, model, optimizer, p, source, rt, ckpt, opts.progress, 60 * checkpoint_minutes)
        held_out = evaluate(model, source.get(0), rt)
    finally:
        source.close()
    log.info("held-out (%d scenes, seed %d): %s", cfg.held_out, chunk_seed(0), held_out)
    return write_outputs(out, cfg, model, p, held_out, half, argv)


def _train_chunks(cfg, model, optimizer, p: Progress, source: ChunkSource, rt, ckpt: Path, progress: bool,
                  every_s: float = 0.0) -> None:
    """Chunks until --scenes or the budget is reached; a checkpoint every `every_s` seconds and at the end."""
    from tqdm import tqdm

    model.train()
    saved_at, saved_chunks = time.perf_counter(), p.chunks_done
    total = cfg.max_chunks * cfg.chunk if cfg.scenes is not None else None
    bar = tqdm(total=total, initial=p.scenes_seen, unit="scene", desc="pretrain",
               disable=not progress or not sys.stderr.isatty())
    try:
        while p.chunks_done < cfg.max_chunks and not _budget_spent(cfg, p):
            k = p.chunks_done + 1
            t0 = time.perf_counter()
            wait0 = source.wait_s
            arrays = source.get(k, prefetch=k + 1 if k < cfg.max_chunks else None)
            train_chunk(model, optimizer, arrays, cfg, p, rt, t0, bar)
            source.done_with(k)
            p.chunks_done, p.scenes_seen = k, p.scenes_seen + len(arrays["labels"])
            p.train_s += time.perf_counter() - t0
            p.wait_s += source.wait_s - wait0
            if time.perf_counter() - saved_at >= every_s:
                save_state(ckpt, cfg, model, optimizer, p)
                saved_at, saved_chunks = time.perf_counter(), p.chunks_done
            log.info("chunk %d (seed %d): loss %.4f, %d scenes, %.0f s (%.1f s waiting for scenes)", k, chunk_seed(k),
                     p.last_loss, p.scenes_seen, p.train_s, p.wait_s)
        if p.chunks_done != saved_chunks:
            save_state(ckpt, cfg, model, optimizer, p)
    finally:
        bar.close()


def _budget_spent(cfg: PretrainConfig, p: Progress) -> bool:
    return cfg.budget_minutes is not None and p.train_s >= 60 * cfg.budget_minutes


# --- command line -------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = PretrainConfig(scenes=1)  # the defaults
    parser = argparse.ArgumentParser(
        prog="python -m train pretrain",
        description=__doc__.split("\n\nExit codes")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python -m train pretrain --backbone densenet_small --budget-minutes 120 --out weights/"
               "densenet_small\n  python -m train --preset cpu --weights weights/densenet_small/backbone.pth ...",
    )
    parser.add_argument("--out", type=Path, required=True, help="run folder: backbone.pth, backbone.json, pretrain.pt")
    parser.add_argument("--backbone", default=d.backbone, help=f"one of {', '.join(BACKBONES)} (default {d.backbone})")
    parser.add_argument("--stem", default=d.stem, help=f"one of {', '.join(STEMS)} (default {d.stem})")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--scenes", type=int, help="training scenes to see (whole chunks)")
    size.add_argument("--budget-minutes", type=float, help="train for this long (wall clock), then evaluate")
    parser.add_argument("--chunk", type=int, default=d.chunk, help=f"scenes per chunk / seed (default {d.chunk})")
    parser.add_argument("--held-out", type=int, default=d.held_out, help=f"held-out scenes (default {d.held_out})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--augment", choices=("none", "flips", "dihedral"), default=d.augment)
    parser.add_argument("--generate", choices=("worker", "disk"), default=d.generate,
                        help="worker: render the next chunk in a process beside training; disk: into OUT/chunks first")
    parser.add_argument("--workers", type=int, default=1, help="processes rendering scenes (default 1)")
    parser.add_argument("--seed", type=int, default=d.seed, help="initialisation and shuffling")
    parser.add_argument("--half", action="store_true", help="save backbone.pth in float16 (half the size)")
    parser.add_argument("--checkpoint-minutes", type=float, default=2.0,
                        help="checkpoint (pretrain.pt) at most this often, and at the end (default 2; 0: every chunk)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after its last chunk")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, help="bf16 autocast (default as in training)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")
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
    log.info("wrote %s and %s (held-out macro mAP %.3f on noisy scenes); load it with --weights %s",
             args.out / WEIGHTS_NAME, args.out / CARD_NAME, card["held_out"]["noisy"]["macro_map"],
             args.out / WEIGHTS_NAME)
    return exitcodes.OK


def _checked_run(args: argparse.Namespace, argv: list[str]) -> dict:
    from dualpath.files import check_writable
    from train.config import RunOptions

    check_writable(args.out, "into")
    cfg = PretrainConfig(backbone=args.backbone, stem=args.stem, scenes=args.scenes,
                         budget_minutes=args.budget_minutes, chunk=args.chunk, held_out=args.held_out,
                         batch_size=args.batch_size, lr=args.lr, augment=args.augment, generate=args.generate,
                         seed=args.seed)
    opts = RunOptions(device=args.device, amp=args.amp, channels_last=args.channels_last,
                      progress=not args.quiet, tensorboard=False, threads=args.threads)
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.checkpoint_minutes < 0:
        raise ValueError(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    return run_pretrain(cfg, args.out, opts, resume=args.resume, half=args.half, argv=argv, workers=args.workers,
                        checkpoint_minutes=args.checkpoint_minutes)
