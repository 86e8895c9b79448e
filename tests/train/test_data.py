from __future__ import annotations

import numpy as np
import pytest
import torch

from dualpath import contract
from train.data import Normalizer, epoch_batches, to_device


def test_normalizer_matches_the_contract():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    for channels_last in (False, True):
        norm = Normalizer(torch.device("cpu"), channels_last)
        x = norm.inputs(torch.from_numpy(images))
        assert x.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        np.testing.assert_allclose(x.numpy(), contract.preprocess(images), atol=1e-5)
        np.testing.assert_allclose(norm.targets(torch.from_numpy(images)).numpy(), contract.target_from_clean(images), atol=1e-6)


def test_epoch_batches_are_a_deterministic_shuffle_without_repeats():
    idx = torch.arange(100, 150)
    a = epoch_batches(idx, 16, seed=0, epoch=1)
    assert a.shape == (3, 16)  # the 2-scene tail is dropped
    assert len(set(a.flatten().tolist())) == 48 and set(a.flatten().tolist()) <= set(idx.tolist())
    assert torch.equal(a, epoch_batches(idx, 16, seed=0, epoch=1))
    assert not torch.equal(a, epoch_batches(idx, 16, seed=0, epoch=2))


def test_ddp_processes_take_disjoint_halves_of_the_same_global_batches():
    idx = torch.arange(64)
    full = epoch_batches(idx, 16, seed=5, epoch=3)
    r0 = epoch_batches(idx, 16, seed=5, epoch=3, rank=0, world_size=2)
    r1 = epoch_batches(idx, 16, seed=5, epoch=3, rank=1, world_size=2)
    assert r0.shape == r1.shape == (4, 8)
    assert torch.equal(torch.cat([r0, r1], dim=1), full)
    with pytest.raises(ValueError, match="divisible"):
        epoch_batches(idx, 15, seed=0, epoch=1, world_size=2)


def test_a_set_smaller_than_a_batch_is_one_batch():
    assert epoch_batches(torch.arange(5), 16, seed=0, epoch=1).shape == (1, 5)


def test_to_device_checks_shapes():
    class Bad:
        noisy = np.zeros((2, 32, 32, 3), np.uint8)
        clean = np.zeros((2, 32, 32, 3), np.uint8)
        labels = np.zeros((2, 20), np.uint8)

    with pytest.raises(ValueError, match="dataset.noisy must be uint8"):
        to_device(Bad(), torch.device("cpu"))


@pytest.mark.parametrize("mode", ["flips", "dihedral"])
def test_augment_pairs_applies_one_transform_to_input_and_target(mode):
    from train.data import augment_pairs

    g = torch.Generator().manual_seed(0)
    noisy = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8, generator=g)
    clean = noisy + 1  # tied pixel by pixel, so any geometric transform of both keeps clean == noisy + 1
    a, b = augment_pairs(noisy, clean, mode, torch.Generator().manual_seed(1))
    assert a.shape == noisy.shape and a.dtype == torch.uint8
    assert torch.equal(b, a + 1)
    seen = set()
    for i in range(len(noisy)):
        x = noisy[i]
        variants = {"id": x, "w": x.flip(1), "h": x.flip(0), "hw": x.flip(0).flip(1)}
        if mode == "dihedral":
            variants.update({f"t{k}": v.transpose(0, 1) for k, v in list(variants.items())})
        match = [k for k, v in variants.items() if torch.equal(a[i], v)]
        assert match, f"scene {i} is not a flip/transposition of its input"
        seen.add(match[0])
    assert len(seen) >= (4 if mode == "flips" else 7)  # the transforms are drawn per scene, not fixed


def test_augment_none_is_the_identity_and_unknown_modes_are_refused():
    from train.data import augment_pairs

    x = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    assert augment_pairs(x, x, "none")[0] is x
    with pytest.raises(ValueError, match="augment must be one of"):
        augment_pairs(x, x, "rotate")
