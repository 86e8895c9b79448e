"""What every `python -m train pretrain` card says (train.pretrain_run's backbone card, train.pretrain_dualpath's
whole-model card), and how many scenes a warm start brings along."""
from __future__ import annotations

import shlex
from dataclasses import asdict
from pathlib import Path

import torch

from dualpath.machine import describe as describe_machine
from dualpath.model.config import BACKBONES
from train.pretrain_stream import PretrainConfig, chunk_seed


def card_fields(cfg: PretrainConfig, p, held_out: dict, half: bool, argv, init: dict | None,
                weights: Path) -> dict:
    """What every pretraining card says (a backbone's and a whole model's): backbone, progress, seeds, held-out
    metrics, configuration, warm start, cost, command, machine, and the weights file by name and sha256."""
    from dualpath.files import file_sha256

    return {
        "backbone": cfg.backbone, "stem": cfg.stem, "spec": asdict(BACKBONES[cfg.backbone]),
        "dtype": "float16" if half else "float32",
        "scenes_seen": p.scenes_seen, "chunks": p.chunks_done, "chunk_scenes": cfg.chunk,
        "seed_range": {"train": [chunk_seed(cfg.first_chunk), chunk_seed(cfg.train_chunk(max(p.chunks_done, 1)))],
                       "held_out": chunk_seed(0),
                       "scenes_per_seed": "0..chunk-1 of each seed"},
        "held_out": {"scenes": cfg.held_out, "seed": chunk_seed(0), **held_out},
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("backbone", "stem")},
        "init": init,  # a warm start (--init): from which file, and which tensors started fresh
        "final_train_loss": p.last_loss,
        "wall_s": round(p.train_s, 1), "waited_for_scenes_s": round(p.wait_s, 1),
        "command": "python -m train pretrain " + shlex.join(argv),
        "machine": {**describe_machine(), "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "weights_file": weights.name, "weights_sha256": file_sha256(weights),
    }


def init_seen(init) -> int:
    """The scenes behind a run's own warm start (its "init" record), 0 without one."""
    return int(init.get("scenes_seen") or 0) if isinstance(init, dict) else 0
