"""The data set resident on the training device, batches indexed there, normalisation inside the step.

Scenes are 64x64 uint8, so the whole set lives on the device as uint8 (6000 scenes x 2 images = 147 MB), a batch is
one index_select and its augmentation (augment_pairs) runs there too: no loader workers, no copies of images between
host and device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from dualpath import contract
from train.config import AUGMENTS


class SceneArrays(Protocol):
    """What training reads from a dualpath.scenes.SceneDataset."""

    noisy: np.ndarray  # uint8 (N, 64, 64, 3) RGB model input
    clean: np.ndarray  # uint8 (N, 64, 64, 3) RGB reconstruction target
    labels: np.ndarray  # uint8 (N, C) multi-hot


@dataclass(frozen=True)
class DeviceData:
    noisy: torch.Tensor  # uint8 (N, H, W, 3) on the device
    clean: torch.Tensor  # uint8 (N, H, W, 3)
    labels: torch.Tensor  # uint8 (N, C)

    @property
    def device(self) -> torch.device:
        return self.noisy.device

    def __len__(self) -> int:
        return self.noisy.shape[0]


def check_arrays(ds: SceneArrays) -> None:
    size = (contract.IMAGE_SIZE, contract.IMAGE_SIZE, contract.CHANNELS)
    for name in ("noisy", "clean"):
        arr = getattr(ds, name)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != size:
            raise ValueError(f"dataset.{name} must be uint8 (N, {size[0]}, {size[1]}, 3), got {arr.dtype} {arr.shape}")
    n = len(ds.noisy)
    if ds.clean.shape[0] != n or ds.labels.shape != (n, contract.NUM_CLASSES):
        raise ValueError(
            f"dataset arrays disagree: noisy {ds.noisy.shape}, clean {ds.clean.shape}, labels {ds.labels.shape}; "
            f"expected labels (N, {contract.NUM_CLASSES})"
        )


def to_device(ds: SceneArrays, device: torch.device) -> DeviceData:
    check_arrays(ds)
    move = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.uint8)).to(device)  # noqa: E731
    return DeviceData(move(ds.noisy), move(ds.clean), move(ds.labels))


class Normalizer:
    """uint8 NHWC batches -> float NCHW model inputs and targets, on the device (same maths as dualpath.contract)."""

    def __init__(self, device: torch.device, channels_last: bool):
        self.mean = torch.tensor(contract.MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(contract.STD, device=device).view(1, 3, 1, 1) * 255.0)
        self.channels_last = channels_last

    def inputs(self, noisy: torch.Tensor) -> torch.Tensor:
        # permute(0, 3, 1, 2) of an NHWC tensor already has channels_last strides; float ops keep them.
        x = (noisy.permute(0, 3, 1, 2).float() - self.mean) * self.inv_std
        return self._layout(x)

    def targets(self, clean: torch.Tensor) -> torch.Tensor:
        return self._layout(clean.permute(0, 3, 1, 2).float() / 127.5 - 1.0)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)


def epoch_batches(
    indices: torch.Tensor, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """This process's shuffled batches of one epoch: (n_batches, batch_size // world_size) indices on the device.

    The permutation depends only on (seed, epoch), so every DDP process draws the same global batches and takes
    its own slice of each, and a resumed run sees the batches it would have seen. The tail that does not fill a
    global batch is dropped (a different tail each epoch); a set smaller than one batch is one batch.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes ({world_size})")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = indices[torch.randperm(len(indices), generator=gen).to(indices.device)]
    batch_size = min(batch_size, len(perm) - len(perm) % world_size)
    if batch_size < world_size:
        raise ValueError(f"{len(perm)} training scenes cannot be split over {world_size} processes")
    n_batches = len(perm) // batch_size
    per_rank = batch_size // world_size
    return perm[: n_batches * batch_size].view(n_batches, world_size, per_rank)[:, rank]


def eval_batches(indices: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, ...]:
    return torch.split(indices, batch_size)


def augment_pairs(noisy: torch.Tensor, clean: torch.Tensor, mode: str, generator: torch.Generator | None = None):
    """Label-preserving geometric augmentation of uint8 NHWC batches, the same transform for input and target.

    "flips": each scene flipped left-right and/or up-down at random; "dihedral": also transposed at random (all
    8 rotations/reflections of the square). A utensil's class does not depend on its orientation on the counter.
    Per-sample choices via torch.where over whole batches, no Python loop; the draws come from torch's CPU generator
    (so a checkpoint can save its state) and reach the device as one small copy per batch.
    """
    if mode == "none":
        return noisy, clean
    if mode not in AUGMENTS:  # train.config's list
        raise ValueError(f"augment must be one of {', '.join(map(repr, AUGMENTS))}; got {mode!r}")
    n = noisy.shape[0]
    draws = torch.rand(3, n, generator=generator).to(noisy.device) < 0.5  # (flip W, flip H, transpose) per scene
    pair = torch.stack([noisy, clean])  # (2, N, H, W, 3)
    ops = [lambda t: t.flip(3), lambda t: t.flip(2)]
    if mode == "dihedral":
        ops.append(lambda t: t.transpose(2, 3))
    for op, draw in zip(ops, draws):
        pair = torch.where(draw.view(1, n, 1, 1, 1), op(pair), pair)
    return pair[0], pair[1]
