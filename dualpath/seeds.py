"""Which generated scenes a set holds, and whether two sets share any: the check that keeps calibration, accuracy
control and drift scenes off a model's training scenes, for every seed a user picks (not only the defaults).

Scene i of seed s is a pure function of (SceneConfig, seed, i) (dualpath.scenes), and a data set of seed s and size n
is scenes 0..n-1 of seed s (every index on that one seed; workers split the indices, not the seeds). Two sets thus
share scenes when they have a seed in common and their index ranges meet. The scene config is left out on purpose:
the same seed and index at another degradation severity is the same counter and the same objects. A `SceneRange`
covers seeds [seed, seed_stop) and indices [start, stop) of each (the backbone pretraining stream is many seeds).
Standard library only (the runtime uses it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping


# Every seed range of the project, in one table (the sets that use them import them from here):
# - training data sets use small seeds (TrainConfig.data_seed, default 0; `dualpath.scenes generate --seed`), split by
#   index into train / validation / test; their extra training scenes (TrainConfig.extra_seed) too;
TRAINING_SEEDS_END = 1_000_000
# - calibration and accuracy-control sets take seeds of a stream of their own far above those, so no calibration
#   scene is ever a training or evaluation scene;
SEED_STREAM_START = TRAINING_SEEDS_END
CALIBRATION_SEED = 1_000_003
ACCURACY_CONTROL_SEED = 1_000_004  # validation scenes that --accuracy-control tunes against (not the drift set)
# - the drift reports' held-out scenes have another;
DRIFT_SEED = 2_000_003
# - the backbone pretraining stream (train.pretrain) lies above all of them: chunk k is seed PRETRAIN_SEED_START + k,
#   room for a million chunks. The project's scene-pretrained backbones saw scenes of these seeds, so a model that
#   starts from them has too.
PRETRAIN_SEED_START, PRETRAIN_SEED_END = 10_000_000, 11_000_000
PRETRAIN_SEEDS = (PRETRAIN_SEED_START, PRETRAIN_SEED_END)
ALL_INDICES = 2**31 - 1


def check_stream_above_every_set(start: int, end: int) -> None:
    """AssertionError unless the seed stream [start, end) lies above every other seed the project uses (training data
    and its extra scenes, calibration, accuracy control, drift), so none of its scenes is one of theirs."""
    others = {"training data (dualpath.seeds.TRAINING_SEEDS_END)": TRAINING_SEEDS_END,
              "calibration": CALIBRATION_SEED, "accuracy control": ACCURACY_CONTROL_SEED,
              "the seed stream's start": SEED_STREAM_START, "drift": DRIFT_SEED}
    clash = [name for name, seed in others.items() if start <= seed < end]
    below = all(seed < start for seed in others.values())
    if clash or not below:
        raise AssertionError(f"pretraining seeds [{start}, {end}) are not above the project's other seeds ({others}); "
                             "move PRETRAIN_SEED_START")


@dataclass(frozen=True)
class SceneRange:
    seed: int
    start: int = 0
    stop: int = 1  # indices [start, stop) of each seed
    seed_stop: int | None = None  # seeds [seed, seed_stop); None: just `seed`
    role: str = ""  # what the scenes are for ("training data set", "calibration", ...)

    def __post_init__(self) -> None:
        for name in ("seed", "start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"a scene range's {name} must be an integer, got {value!r}")
        if self.seed_stop is not None and (isinstance(self.seed_stop, bool) or not isinstance(self.seed_stop, int)):
            raise ValueError(f"a scene range's seed_stop must be an integer, got {self.seed_stop!r}")

    @property
    def seeds(self) -> tuple[int, int]:
        return self.seed, self.seed + 1 if self.seed_stop is None else self.seed_stop

    def overlaps(self, other: "SceneRange") -> bool:
        (a, b), (c, d) = self.seeds, other.seeds
        return a < d and c < b and self.start < other.stop and other.start < self.stop and \
            self.start < self.stop and other.start < other.stop

    def describe(self) -> str:
        lo, hi = self.seeds
        seeds = f"seed {lo}" if hi == lo + 1 else f"seeds {lo}..{hi - 1}"
        scenes = "every scene" if self.stop >= ALL_INDICES else f"scenes {self.start}..{self.stop - 1}"
        return f"{self.role + ': ' if self.role else ''}{scenes} of {seeds}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> "SceneRange":
        if not isinstance(data, Mapping):
            raise ValueError(f"a scene range must be a JSON object, got {data!r}")
        known = {k: data[k] for k in ("seed", "start", "stop", "seed_stop", "role") if k in data}
        return cls(**known)


def training_ranges(train_config: Mapping[str, Any] | None) -> list[SceneRange]:
    """The scenes a training config trained on: its data set (data_seed, n_scenes scenes; the training run records
    the data set's own seed and size there), its extra training scenes (extra_seed, extra_scenes) and, for a model
    that starts from a weights file, the pretraining stream. Validation and test scenes are part of the data set, so
    they count too. [] when the config says nothing."""
    cfg = train_config or {}
    ranges = []
    seed, n = cfg.get("data_seed"), cfg.get("n_scenes")
    if _int(seed) and _int(n):
        ranges.append(SceneRange(seed, 0, n, role="training data set"))
    seed, n = cfg.get("extra_seed"), cfg.get("extra_scenes")
    if _int(seed) and _int(n) and n > 0:
        ranges.append(SceneRange(seed, 0, n, role="extra training scenes"))
    pretrained = cfg.get("pretrained")
    if isinstance(pretrained, str) and pretrained not in ("none", "imagenet"):  # a weights file: ours, or like ours
        ranges.append(SceneRange(PRETRAIN_SEEDS[0], 0, ALL_INDICES, seed_stop=PRETRAIN_SEEDS[1],
                                 role="the backbone's pretraining stream"))
    return ranges


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def overlap(used: Iterable[SceneRange], wanted: Iterable[SceneRange]) -> tuple[SceneRange, SceneRange] | None:
    """The first (used, wanted) pair that shares scenes, or None."""
    used = list(used)
    for w in wanted:
        for u in used:
            if u.overlaps(w):
                return u, w
    return None


def check_disjoint(used: Iterable[SceneRange], wanted: Iterable[SceneRange], source: str, fix: str) -> None:
    """ValueError (one line naming `source`, both ranges and `fix`) when a wanted set shares scenes with a used one."""
    clash = overlap(used, wanted)
    if clash is not None:
        u, w = clash
        raise ValueError(f"{w.describe()} would reuse the scenes {source} was trained on ({u.describe()}); {fix}")
