"""What `python -m train pretrain` trains on: its configuration (PretrainConfig) and its stream of generated scenes.

Chunk k is scenes 0..chunk-1 of seed PRETRAIN_SEED_START + k (chunk_seed); chunk 0 is the held-out set. ChunkSource
hands the chunks over in order: rendered by spawned worker processes while the previous chunk trains
(train.pretrain_scenes, torch-free), or generated into data set folders on disk first (--generate disk).
"""
from __future__ import annotations

import math
import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from dualpath.model.config import BACKBONES, STEMS
from dualpath.seeds import PRETRAIN_SEED_END, PRETRAIN_SEED_START

GENERATE = ("worker", "disk")  # how the scenes are made (PretrainConfig.generate)
MODELS = ("classifier", "dualpath")  # what is pretrained (PretrainConfig.model)
LAST_CHUNK = PRETRAIN_SEED_END - PRETRAIN_SEED_START - 1  # the stream's last chunk (chunk_seed's range)


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
    init: str | None = None  # warm start: a backbone.pth or pretrain.pt whose fitting tensors are copied in first
    # "classifier": one DenseNet + a linear head, BCE (out: backbone.pth) | "dualpath": the `cpu` preset's whole model
    # and loss (train.pretrain_dualpath; out: model.pth)
    model: str = "classifier"
    backbone_lr_scale: float = 0.25  # --model dualpath: the DenseNets' rate as a fraction of --lr (as in phase 2)
    first_chunk: int = 1  # the stream's first training chunk: a continued model goes on past the chunks it saw

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
        if self.model not in MODELS:
            raise ValueError(f"--model must be one of {', '.join(MODELS)}; got {self.model!r}")
        if not 0.0 <= self.backbone_lr_scale <= 1.0:
            raise ValueError(f"--backbone-lr-scale must be in [0, 1], got {self.backbone_lr_scale}")
        if isinstance(self.first_chunk, bool) or not isinstance(self.first_chunk, int) or not (
                1 <= self.first_chunk < LAST_CHUNK):
            raise ValueError(f"--first-chunk must be a chunk of the stream, 1 to {LAST_CHUNK - 1}; got "
                             f"{self.first_chunk!r}")
        if self.generate not in GENERATE:
            raise ValueError(f"--generate must be 'worker' or 'disk'; got {self.generate!r}")

    @property
    def max_chunks(self) -> int:
        """Training chunks at most (by --scenes; a time budget stops earlier)."""
        if self.scenes is not None:
            return math.ceil(self.scenes / self.chunk)
        return LAST_CHUNK - self.first_chunk + 1

    def train_chunk(self, i: int) -> int:
        """The stream's chunk index of the run's i-th training chunk (1-based)."""
        return self.first_chunk + i - 1


def chunk_seed(k: int) -> int:
    """Seed of chunk k (0: the held-out chunk)."""
    seed = PRETRAIN_SEED_START + k
    if not PRETRAIN_SEED_START <= seed < PRETRAIN_SEED_END:
        raise ValueError(f"chunk {k} lies outside the pretraining seed range")
    return seed


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
