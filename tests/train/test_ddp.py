"""Two-process DDP launched the way users launch it (torchrun -m train): on the CPU over gloo, and on two GPUs over
NCCL (`gpu`; NCCL wants a GPU per process, so it skips on one-GPU machines)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torchvision.models import DenseNet

from dualpath.model import BACKBONES


ON_TWO_GPUS = [pytest.mark.gpu,
               pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL DDP needs a GPU per process: 2 GPUs")]


@pytest.mark.slow  # torchrun: two training processes
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_TWO_GPUS)],
                         ids=["gloo", "nccl"])
def test_torchrun_two_processes_through_both_phases(scenes, tmp_path, device):
    spec = BACKBONES["densenet_tiny"]
    net = DenseNet(growth_rate=spec.growth_rate, block_config=spec.block_config,
                   num_init_features=spec.num_init_features, bn_size=spec.bn_size)
    torch.save(net.state_dict(), tmp_path / "weights.pth")  # local "pretrained" weights: phase 1 runs
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", "--preset", "tiny", "--data", str(scenes.path), "--out", str(out), "--device", device,
           "--threads", "1", "--batch-size", "16", "--weights", str(tmp_path / "weights.pth")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env, cwd=os.getcwd())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    log = (out / "train.log").read_text()
    assert "2 process(es)" in log and "phase 1: epochs 1-1" in log and "phase 2: epochs 2-2" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["folds"][0]["best_epoch"] in (1, 2)
    last = torch.load(out / "fold0/last.pt", weights_only=True)
    assert last["epoch"] == 2 and [r["phase"] for r in last["state"]["history"]] == [1, 2]
    assert not any(k.startswith("module.") for k in last["model"])  # saved unwrapped, loadable without DDP
