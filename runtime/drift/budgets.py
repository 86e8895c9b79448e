"""Drift budgets: how much worse than its reference (or the last accepted baseline) a candidate may be.

A budget bounds the *drop* of a metric: reference - candidate for higher-is-better metrics, candidate -
reference for lower-is-better ones (hamming_loss). Absolute (`abs`, in the metric's units: accuracy 0.003 is
0.3 points) and/or relative (`rel`, a fraction of the reference value). Improvements never violate a budget.

Besides the metrics, the share of scenes whose top-T labels changed (`label_flip_rate`, in the report's outputs) has
a budget of its own: an absolute limit on that share (docs/design.md: at most 5%).

Budgets given (flags, a file) name the budgets of those metrics; every other metric keeps its default, so no
combination of flags can remove a default budget (a candidate whose labels are all wrong fails whatever
--budget ssim=... says).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dualpath.files import read_json
from dualpath.metrics import LOWER_IS_BETTER, METRIC_KEYS

# Budgets on the outputs themselves, not on a metric: the value is the report's outputs[key] (0 for the reference
# against itself), bounded from above.
OUTPUT_KEYS: tuple[str, ...] = ("label_flip_rate",)
BUDGET_KEYS: tuple[str, ...] = METRIC_KEYS + OUTPUT_KEYS


@dataclass(frozen=True)
class Budget:
    metric: str
    abs: float | None = None  # largest allowed drop in the metric's own units
    rel: float | None = None  # largest allowed drop as a fraction of the reference value

    def __post_init__(self) -> None:
        if self.metric not in BUDGET_KEYS:
            raise ValueError(f"no budget possible for {self.metric!r}; metrics: {', '.join(BUDGET_KEYS)}")
        if self.metric in OUTPUT_KEYS and self.rel is not None:
            raise ValueError(f"budget {self.metric} is a share of scenes (0.05 = 5%), an absolute limit only: write "
                             f"{self.metric}=0.05, not a relative one")
        if self.abs is None and self.rel is None:
            raise ValueError(f"budget for {self.metric} needs an absolute or a relative limit")
        for name in ("abs", "rel"):
            value = getattr(self, name)
            if value is None:
                continue
            # bool is an int to Python; NaN compares False with everything (a NaN limit would never be exceeded)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"budget {self.metric}.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"budget {self.metric}.{name} must be a finite number >= 0, got {value!r}")

    def drop(self, reference: float, candidate: float) -> float:
        lower = self.metric in LOWER_IS_BETTER or self.metric in OUTPUT_KEYS
        return candidate - reference if lower else reference - candidate

    def violation(self, reference: float, candidate: float, against: str = "reference") -> str | None:
        drop = self.drop(reference, candidate)
        if self.metric in OUTPUT_KEYS:  # reference is 0: the reference against itself
            if self.abs is not None and drop > self.abs + 1e-12:
                return f"{self.metric}: {candidate:.2%} of scenes changed their top-T labels > {self.abs:.2%}"
            return None
        limits = []
        if self.abs is not None and drop > self.abs + 1e-12:
            limits.append(f"drop {drop:.4f} > {self.abs:g}")
        if self.rel is not None and reference != 0 and drop / abs(reference) > self.rel + 1e-12:
            limits.append(f"relative drop {drop / abs(reference):.2%} > {self.rel:.2%}")
        if not limits:
            return None
        return f"{self.metric}: {reference:.4f} ({against}) -> {candidate:.4f}, " + " and ".join(limits)

    def usage(self, reference: float, candidate: float) -> float:
        """How much of the budget the drop uses: 1.0 at the limit, > 1 past it, <= 0 for an improvement."""
        drop = self.drop(reference, candidate)
        shares = []
        if self.abs is not None:
            shares.append(_share(drop, self.abs))
        if self.rel is not None and reference != 0:
            shares.append(_share(drop / abs(reference), self.rel))
        return max(shares, default=0.0)

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("abs", self.abs), ("rel", self.rel)) if v is not None}

    def flag(self) -> str:
        """This budget as --budget (parse_budget) reads it: 'psnr=0.5', 'psnr=2%' or 'psnr=0.5,2%'."""
        limits = ([] if self.abs is None else [f"{self.abs:g}"]) + ([] if self.rel is None else [f"{self.rel * 100:g}%"])
        return f"{self.metric}=" + ",".join(limits)


# docs/design.md: on 1000 held-out scenes, label-wise accuracy drop <= 0.3 points, macro mAP drop <= 0.005, SSIM <= 0.003,
# at most 5% of scenes changing their top-T labels.
DEFAULT_BUDGETS: dict[str, Budget] = {
    "accuracy": Budget("accuracy", abs=0.003),
    "macro_map": Budget("macro_map", abs=0.005),
    "ssim": Budget("ssim", abs=0.003),
    "label_flip_rate": Budget("label_flip_rate", abs=0.05),
}


def parse_budget(text: str) -> Budget:
    """'macro_map=0.005' (absolute) or 'macro_map=1%' (relative) or 'psnr=0.5,2%' (both)."""
    metric, sep, limits = text.partition("=")
    if not sep or not limits:
        raise ValueError(f"budget {text!r}: write METRIC=ABS, METRIC=REL% or METRIC=ABS,REL% (e.g. macro_map=0.005)")
    kwargs: dict[str, float] = {}
    share = metric.strip() in OUTPUT_KEYS  # a share of scenes: 5% is 0.05, an absolute limit
    for part in limits.split(","):
        part = part.strip()
        try:
            if part.endswith("%"):
                kwargs["abs" if share else "rel"] = float(part[:-1]) / 100.0
            else:
                kwargs["abs"] = float(part)
        except ValueError:
            raise ValueError(f"budget {text!r}: {part!r} is not a number") from None
    return Budget(metric.strip(), **kwargs)


def budgets_from_args(args) -> dict[str, Budget]:
    """DEFAULT_BUDGETS, then `--budgets-file` on top, then the `--budget` flags (python -m runtime.drift and python -m
    export): each one given names that metric's budget, every other metric keeps its default."""
    budgets = load_budgets(args.budgets_file) if args.budgets_file else {}
    flags = {b.metric: b for b in map(parse_budget, args.budget)}
    return dict(DEFAULT_BUDGETS) | budgets | flags


def load_budgets(path: str | Path) -> dict[str, Budget]:
    """A JSON file {"metric": {"abs": x, "rel": y}, ...}."""
    path = Path(path)
    data = read_json(path, ValueError, missing=f"no budgets file at {path}",
                     corrupt=f"budgets file {path} is not valid JSON: {{error}}")
    if not isinstance(data, dict):
        raise ValueError(f"budgets file {path} must hold an object {{metric: {{abs, rel}}}}")
    return {m: Budget(m, **_limits(m, v)) for m, v in data.items()}


def _limits(metric: str, value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or not set(value) <= {"abs", "rel"}:
        raise ValueError(f"budget for {metric} must be an object with 'abs' and/or 'rel', got {value!r}")
    return value


def scaled(budgets: Mapping[str, Budget], factor: float) -> dict[str, Budget]:
    """The same budgets with every limit times `factor` (< 1: a safety margin)."""
    return {m: Budget(m, None if b.abs is None else b.abs * factor, None if b.rel is None else b.rel * factor)
            for m, b in budgets.items()}


def _share(drop: float, limit: float) -> float:
    if limit > 0:
        return drop / limit
    return float("inf") if drop > 1e-12 else 0.0


def _pairs(budgets: Mapping[str, Budget], reference: Mapping[str, float], candidate: Mapping[str, float],
           outputs: Mapping[str, Any] | None):
    """(budget, reference value, candidate value) for every budget that can be checked: an output budget
    (label_flip_rate) needs the report's outputs, and is left out without them (accuracy control's rounds)."""
    for metric, budget in budgets.items():
        if metric in OUTPUT_KEYS:
            if outputs is not None:
                yield budget, 0.0, float(outputs[metric])
        else:
            yield budget, reference[metric], candidate[metric]


def worst_usage(budgets: Mapping[str, Budget], reference: Mapping[str, float], candidate: Mapping[str, float],
                outputs: Mapping[str, Any] | None = None) -> float:
    """The largest share of any budget the candidate uses (<= 1: every budget holds)."""
    return max((b.usage(r, c) for b, r, c in _pairs(budgets, reference, candidate, outputs)), default=0.0)


def check(budgets: Mapping[str, Budget], reference: Mapping[str, float], candidate: Mapping[str, float],
          against: str = "reference", outputs: Mapping[str, Any] | None = None) -> list[str]:
    """Violations (empty when every budget holds). `outputs`: the report's output drift (label_flip_rate), for the
    budgets on it; without it those are not checked."""
    out = []
    for budget, r, c in _pairs(budgets, reference, candidate, outputs):
        v = budget.violation(r, c, against)
        if v:
            out.append(v)
    return out
