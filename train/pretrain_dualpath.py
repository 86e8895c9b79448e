"""`python -m train pretrain --model dualpath`: the whole dual-path model pretrained on the scene stream.

The scene-pretrained backbone (`--model classifier`, train.pretrain_run) gives `make demo` good DenseNets, but the
decoder, CBAM, fusion and head start from random initialisation in every run and see ~136,000 scenes in its 12
minutes. Here the `cpu` preset's own model (train.config.CPU: arch dualpath, its loss 1.5 MSE + 2.0 ASL) trains on the
same stream of generated scenes as the backbone's pretraining, usually warm-started from that backbone (--init a
backbone.pth: both DenseNets), the DenseNets at --backbone-lr-scale of the rate. Its output OUT/model.pth is the whole
model's state dict with its card OUT/model.json (MODEL_CARD_FORMAT); `python -m train --pretrained OUT/model.pth`
starts every weight of the model from it (dualpath.model.build), and the two phases run as over a backbone.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from dualpath.model.weights import MODEL_CARD_FORMAT
from train.pretrain_card import card_fields, init_seen
from train.pretrain_stream import PretrainConfig

log = logging.getLogger("train")

MODEL_WEIGHTS_NAME, MODEL_CARD_NAME = "model.pth", "model.json"


def model_config(cfg: PretrainConfig, pretrained: str = "none"):
    """The `cpu` preset's model (its model options) with this run's backbone and stem."""
    from dualpath.model import ModelConfig
    from train.config import CPU

    return ModelConfig(**{**CPU.model_options, "arch": "dualpath", "backbone": cfg.backbone, "stem": cfg.stem,
                          "pretrained": pretrained})


@functools.lru_cache(maxsize=1)
def criterion():
    """The `cpu` preset's loss: what `make demo` trains the model with (stateless: one instance serves every batch)."""
    from train.config import CPU
    from train.losses import MultitaskLoss

    return MultitaskLoss(CPU.loss, CPU.recon_weight, CPU.cls_weight)


def loss_record() -> dict:
    from train.config import CPU

    return {"cls_loss": CPU.loss, "recon_weight": CPU.recon_weight, "cls_weight": CPU.cls_weight}


def build(cfg: PretrainConfig):
    """The model at its initialisation, and the warm start's record (None without --init).

    --init: a backbone.pth (both DenseNets; decoder, CBAM, fusion and head start fresh), a model.pth of an earlier
    dual-path pretraining (every weight), or such a run's pretrain.pt (every weight)."""
    from dualpath.files import file_sha256
    from dualpath.model import build_model
    from dualpath.model.weights import read_card, read_model_card, resolve_source

    if not cfg.init:
        return build_model(model_config(cfg)), None
    path = Path(resolve_source(cfg.init))
    if not path.is_file():
        raise ValueError(f"--init {cfg.init}: no such file; pass a backbone.pth (weights/<name>/backbone.pth), a "
                         "model.pth or a pretrain.pt of an earlier `python -m train pretrain --model dualpath`")
    if path.suffix == ".pt":
        model = build_model(model_config(cfg))
        ckpt = _read(path)
        saved = ckpt.get("pretrain_config") if isinstance(ckpt, dict) else None
        if not isinstance(saved, dict) or saved.get("model") != "dualpath":
            raise ValueError(f"--init {cfg.init} is not the pretrain.pt of a `--model dualpath` pretraining; pass a "
                             "backbone.pth to start the DenseNets from it")
        _load_whole(model, ckpt["model"], cfg.init)
        seen = int(ckpt["progress"]["scenes_seen"]) + init_seen(ckpt.get("init"))
        fresh = []
    else:
        model = build_model(model_config(cfg, pretrained=cfg.init))  # a backbone.pth or a model.pth, with its checks
        whole = read_model_card(cfg.init)
        card = whole or read_card(cfg.init)
        seen = int(card["scenes_seen"]) + init_seen(card.get("init")) if card and "scenes_seen" in card else None
        in_backbones = {id(t) for b in model.backbones() for t in b.parameters()}
        fresh = [] if whole else sorted({k.split(".")[0] for k, t in model.named_parameters()
                                         if id(t) not in in_backbones})
    record = {"from": str(cfg.init), "sha256": file_sha256(path), "scenes_seen": seen, "fresh": fresh}
    log.info("warm start from %s (%s scenes seen); fresh: %s", cfg.init, seen, ", ".join(fresh) or "none")
    return model, record


def _read(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torn or foreign file
        raise ValueError(f"--init {path}: cannot read it as a torch file ({err})") from err


def _load_whole(model, state, source: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"--init {source} does not fit this model ({str(err).splitlines()[0]}); pass --backbone and "
                         "--stem of the run that made it") from err


def make_optimizer(model, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """Adam; the DenseNets' group at --backbone-lr-scale of the rate (train.loop.set_lr applies its lr_scale)."""
    in_backbones = {id(p) for b in model.backbones() for p in b.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in in_backbones]},
              {"params": [p for p in model.parameters() if id(p) in in_backbones],
               "lr_scale": cfg.backbone_lr_scale}]
    return torch.optim.Adam(groups, lr=cfg.lr)


def chunk_loss(model, norm, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The `cpu` preset's loss on a batch, as train.loop.train_step computes it: the noisy scenes in, the clean ones
    the reconstruction's target (train.pretrain_run.train_chunk runs the pass)."""
    loss, _ = criterion()(model(norm.inputs(a)), norm.targets(b), labels)
    return loss


@torch.no_grad()
def evaluate(model, arrays, rt, batch_size: int = 256) -> dict:
    """The held-out chunk as `python -m train` scores a split: classification of the noisy scenes, SSIM / PSNR of the
    reconstructions against the clean ones (train.evaluate)."""
    from dualpath.contract import CLASS_NAMES
    from dualpath.metrics import per_class_report
    from train.data import Normalizer, to_device
    from train.evaluate import compute_metrics, predict

    ds = SimpleNamespace(**{k: np.ascontiguousarray(arrays[k]) for k in ("noisy", "clean", "labels")})
    data = to_device(ds, rt.device)
    pred = predict(model, criterion(), data, np.arange(len(ds.labels)), normalizer=Normalizer(rt.device,
                   rt.channels_last), batch_size=batch_size, amp=rt.amp)
    m = compute_metrics(pred, ds.labels, ds.clean)
    out = {k: round(float(m[k]), 4) for k in ("macro_map", "accuracy", "macro_auc", "micro_f1", "ssim", "psnr")}
    out["per_class_ap"] = {row["name"]: None if row["ap"] is None else round(row["ap"], 4)
                           for row in per_class_report(ds.labels[pred.indices], pred.probs, CLASS_NAMES)}
    model.train()
    return {"noisy": out}


def write_outputs(out: Path, cfg: PretrainConfig, model, p, held_out: dict, half: bool, argv, init) -> dict:
    from dualpath.files import atomic_path, write_json

    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    weights = out / MODEL_WEIGHTS_NAME
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    options = model_config(cfg).to_dict()
    options.pop("pretrained")
    card = {"format": MODEL_CARD_FORMAT, "arch": "dualpath", "model": options, "loss": loss_record(),
            **card_fields(cfg, p, held_out, half, argv, init, weights)}
    write_json(out / MODEL_CARD_NAME, card)
    return card
