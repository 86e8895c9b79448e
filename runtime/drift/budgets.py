"""Drift budgets: how much worse than its reference (or the last accepted baseline) a candidate may be.

A budget bounds the *drop* of a metric: reference - candidate for higher-is-better metrics, candidate -
reference for lower-is-better ones (hamming_loss). Absolute (`abs`, in the metric's units: accuracy 0.003 is
0.3 points) and/or relative (`rel`, a fraction of the reference value). Improvements never violate a budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dualpath.files import read_json
from dualpath.metrics import LOWER_IS_BETTER, METRIC_KEYS


@dataclass(frozen=True)
class Budget:
    metric: str
    abs: float | None = None  # largest allowed drop in the metric's own units
    rel: float | None = None  # largest allowed drop as a fraction of the reference value

    def __post_init__(self) -> None:
        if self.metric not in METRIC_KEYS:
            raise ValueError(f"no budget possible for {self.metric!r}; metrics: {', '.join(METRIC_KEYS)}")
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
        return candidate - reference if self.metric in LOWER_IS_BETTER else reference - candidate

    def violation(self, reference: float, candidate: float, against: str = "reference") -> str | None:
        drop = self.drop(reference, candidate)
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


# design.md: on 1000 held-out scenes, label-wise accuracy drop <= 0.3 points, macro mAP drop <= 0.005, SSIM <= 0.003.
DEFAULT_BUDGETS: dict[str, Budget] = {
    "accuracy": Budget("accuracy", abs=0.003),
    "macro_map": Budget("macro_map", abs=0.005),
    "ssim": Budget("ssim", abs=0.003),
}


def parse_budget(text: str) -> Budget:
    """'macro_map=0.005' (absolute) or 'macro_map=1%' (relative) or 'psnr=0.5,2%' (both)."""
    metric, sep, limits = text.partition("=")
    if not sep or not limits:
        raise ValueError(f"budget {text!r}: write METRIC=ABS, METRIC=REL% or METRIC=ABS,REL% (e.g. macro_map=0.005)")
    kwargs: dict[str, float] = {}
    for part in limits.split(","):
        part = part.strip()
        try:
            if part.endswith("%"):
                kwargs["rel"] = float(part[:-1]) / 100.0
            else:
                kwargs["abs"] = float(part)
        except ValueError:
            raise ValueError(f"budget {text!r}: {part!r} is not a number") from None
    return Budget(metric.strip(), **kwargs)


def budgets_from_args(args) -> dict[str, Budget]:
    """The budgets of `--budgets-file` with the `--budget` flags on top (python -m runtime.drift and python -m export);
    DEFAULT_BUDGETS when neither is given."""
    budgets = load_budgets(args.budgets_file) if args.budgets_file else {}
    flags = {b.metric: b for b in map(parse_budget, args.budget)}
    if not budgets and not flags:
        return dict(DEFAULT_BUDGETS)
    return budgets | flags


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


def worst_usage(budgets: Mapping[str, Budget], reference: Mapping[str, float], candidate: Mapping[str, float]) -> float:
    """The largest share of any budget the candidate uses (<= 1: every budget holds)."""
    return max((b.usage(reference[m], candidate[m]) for m, b in budgets.items()), default=0.0)


def check(budgets: Mapping[str, Budget], reference: Mapping[str, float], candidate: Mapping[str, float],
          against: str = "reference") -> list[str]:
    """Violations (empty when every budget holds)."""
    out = []
    for metric, budget in budgets.items():
        v = budget.violation(reference[metric], candidate[metric], against)
        if v:
            out.append(v)
    return out
