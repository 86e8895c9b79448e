"""Shared by tests/export: a tiny real dual-path checkpoint (torch). The fake tensorrt module: tests/trt_fakes.py."""
from __future__ import annotations


def make_checkpoint(path, arch="dualpath", seed=0, **extra):
    import torch

    from dualpath.model import ModelConfig, build_model
    from train.checkpoint import make_checkpoint as make, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch=arch, backbone="densenet_tiny", hidden=16)).eval()
    ckpt = make(model, train_config={"data_seed": 0}, epoch=3, phase=2,
                metrics={"macro_map": 0.25, "accuracy": 0.9, "per_class": []})
    ckpt.update(extra)
    save_checkpoint(ckpt, path)
    return path
