"""Which classes appear in which scene: balanced per block, so every data set is balanced by construction.

Scenes are grouped in blocks of `balance_block` consecutive indices. Inside a block the number of scenes with
1, 2 and 3 objects and the number of appearances of every class are fixed exactly (up to integer rounding,
rotated across blocks), then shuffled. A data set of whole blocks is therefore exactly balanced, and any prefix is
balanced to within one block. Scene i depends only on (config, seed, i): its block is computed on demand.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from dualpath import contract
from dualpath.scenes.config import SceneConfig

_LAYOUT_STREAM = 0x1A7  # seed-sequence tag: the layout's random stream, independent of the scenes' own streams


def _largest_remainder(weights: tuple[float, ...], total: int) -> list[int]:
    """Integer counts proportional to weights that add up to total (Hamilton's method, ties to the lower index)."""
    w = np.asarray(weights, dtype=np.float64)
    quota = w / w.sum() * total
    counts = np.floor(quota).astype(int)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts.tolist()


@lru_cache(maxsize=64)
def block_layout(config: SceneConfig, seed: int, block: int) -> tuple[tuple[int, ...], ...]:
    """Class indices (bottom-to-top drawing order) of every scene in one block."""
    n_classes = contract.NUM_CLASSES
    rng = np.random.default_rng(np.random.SeedSequence([seed, block, _LAYOUT_STREAM]))
    per_cardinality = _largest_remainder(config.cardinality_weights, config.balance_block)
    sizes = [k + 1 for k, count in enumerate(per_cardinality) for _ in range(count)]
    slots = sum(sizes)
    remaining = np.full(n_classes, slots // n_classes)
    # The classes that get one extra appearance in this block rotate with the block index, so the surplus is
    # spread evenly over a data set instead of always landing on the first classes.
    extra = slots % n_classes
    remaining[(block * extra + np.arange(extra)) % n_classes] += 1

    scenes: list[tuple[int, ...]] = []
    for k in rng.permutation(sizes):
        # Take the k classes with the most appearances left (random among equals). This keeps the counts within one
        # of each other at every step, so it never gets stuck (k distinct classes always remain) and every prefix
        # of the block is balanced too, which keeps data sets of partial blocks balanced.
        key = np.lexsort((rng.random(n_classes), -remaining))
        chosen = key[:k]
        remaining[chosen] -= 1
        scenes.append(tuple(int(c) for c in rng.permutation(chosen)))
    return tuple(scenes)


def scene_classes(config: SceneConfig, seed: int, index: int) -> tuple[int, ...]:
    """The classes of scene `index`, bottom-to-top."""
    if index < 0:
        raise ValueError(f"scene index must be >= 0, got {index}")
    block, offset = divmod(index, config.balance_block)
    return block_layout(config, seed, block)[offset]
