"""Training's CUDA paths (docs/design.md, "GPU training"): bf16 autocast, the data set resident on the GPU with no host
sync in the step, and torch.compile; DDP over NCCL is in test_ddp.py. Marked `gpu`: `make test-gpu` runs them, and
where torch sees no CUDA GPU they skip (tests/conftest.py)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from dualpath.model import ModelConfig, build_model
from train.checkpoint import load_model
from train.cli import main
from train.data import Normalizer, epoch_batches, to_device
from train.loop import train_step
from train.losses import MultitaskLoss

pytestmark = pytest.mark.gpu
BATCH = 16


@pytest.fixture
def resident(scenes):
    """The session's tiny data set, on the GPU."""
    return to_device(scenes, torch.device("cuda"))


def _model(device: torch.device):
    model = build_model(ModelConfig(backbone="densenet_tiny", pretrained="none"))
    return model.to(device, memory_format=torch.channels_last)


def _setup(data):
    """A model, its criterion and optimiser, one batch of indices and the normaliser, all on the data's device."""
    model = _model(data.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    idx = torch.arange(BATCH, device=data.device)
    return model, MultitaskLoss(), optimizer, idx, Normalizer(data.device, channels_last=True)


def test_the_data_set_lives_on_the_gpu_as_uint8_and_batches_are_drawn_there(scenes, resident):
    assert resident.device.type == "cuda" and resident.noisy.dtype == torch.uint8
    assert len(resident) == len(scenes.labels)
    batches = epoch_batches(torch.arange(len(resident), device=resident.device), BATCH, seed=0, epoch=1)
    assert batches.device.type == "cuda"
    first = batches[0]
    assert torch.equal(resident.noisy[first].cpu(), torch.from_numpy(scenes.noisy[first.cpu().numpy()]))
    x = Normalizer(resident.device, channels_last=True).inputs(resident.noisy[first])
    assert x.device.type == "cuda" and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_step_computes_in_bf16_and_keeps_weights_and_losses_in_float32(resident):
    model, criterion, optimizer, idx, norm = _setup(resident)
    seen: list[torch.dtype] = []
    for conv in (m for m in model.modules() if isinstance(m, torch.nn.Conv2d)):
        conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    before = [p.detach().clone() for p in model.parameters()]
    parts = train_step(model, criterion, optimizer, resident, idx, norm, amp=True)
    assert seen and set(seen) == {torch.bfloat16}
    assert parts.dtype == torch.float32 and parts.device.type == "cuda" and bool(torch.isfinite(parts).all())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))


def test_a_training_step_never_waits_for_the_gpu(resident):
    """docs/design.md: no host sync in the step. With sync debug mode "error", torch raises on any call that synchronises.
    Without augmentation: augment_pairs copies its random draws from the CPU generator (a small copy per batch)."""
    model, criterion, optimizer, idx, norm = _setup(resident)
    train_step(model, criterion, optimizer, resident, idx, norm, amp=True)  # lazy set-up, optimiser state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        parts = [train_step(model, criterion, optimizer, resident, idx, norm, amp=True) for _ in range(3)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(torch.isfinite(torch.stack(parts)).all())


def test_python_m_train_on_cuda_defaults_to_bf16_and_channels_last(cli_args, tmp_path):
    out = tmp_path / "run"
    assert main(cli_args(out, "--device", "cuda")) == 0
    log = (out / "train.log").read_text()
    assert "on cuda" in log and "(amp True, channels_last True, 1 process(es))" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(metrics[k]) for k in ("macro_map", "accuracy", "ssim"))


def test_compiled_run_finishes_and_saves_a_plain_checkpoint(cli_args, tmp_path):
    out = tmp_path / "compiled"
    assert main(cli_args(out, "--device", "cuda", "--compile")) == 0
    _, ckpt = load_model(out / "best.pt")
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in ckpt["model"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(math.isfinite(metrics[k]) for k in ("macro_map", "accuracy", "ssim"))
