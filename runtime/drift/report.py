"""The drift report: reference and candidate on the same held-out scenes -> drift.json, drift.md, plots.

    result = drift_report(ref_backend, cand_backend, out, DriftConfig(n=1000), budgets)
    result["passed"], result["violations"]
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from dualpath.files import folder_lock, interrupts_deferred, process_alive
from dualpath.metrics import HEADLINE_KEYS, METRIC_KEYS
from runtime.drift import plots
from runtime.drift.budgets import DEFAULT_BUDGETS, OUTPUT_KEYS, Budget, check
from runtime.drift.compare import compare, run_backend
from runtime.drift.sets import DRIFT_SEED, drift_dataset


@dataclass(frozen=True)
class DriftConfig:
    n: int = 1000  # held-out scenes (docs/design.md's budget is defined on 1000)
    severity: float = 1.0  # degradation of the main set (1 = the training mix)
    seed: int = DRIFT_SEED
    severities: tuple[float, ...] = ()  # the sweep (e.g. 0, 1, 2, 3); empty: no sweep
    sweep_n: int = 200  # scenes per sweep level
    batch_size: int = 64
    data_root: Path = Path("data")
    workers: int = 1
    plots: bool = True

    def __post_init__(self) -> None:
        for name in ("n", "sweep_n", "batch_size", "workers", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.n < 20 or self.sweep_n < 20:
            raise ValueError(f"n and sweep_n must be >= 20 scenes for metrics to mean anything, got {self.n}, {self.sweep_n}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for s in (self.severity, *self.severities):
            if not 0.0 <= s <= 4.0:
                raise ValueError(f"severity must be in [0, 4] (0 clean, 1 training mix, 2 very degraded), got {s}")

    def identity(self) -> dict[str, Any]:
        """What a baseline must share to be comparable."""
        return {"n": self.n, "seed": self.seed, "severity": self.severity}


CONTRACT_FIELDS = ("class_names", "image_size", "mean", "std", "input_name", "output_names")


def check_same_contract(reference, candidate) -> None:
    """Reference and candidate must read the same input and mean the same labels: a candidate whose class_names are
    reordered scores identically on every metric and still names the wrong object. ValueError naming the difference."""
    ref, cand = reference.metadata, candidate.metadata
    for name in CONTRACT_FIELDS:
        a, b = (tuple(v) if isinstance(v, (list, tuple)) else v for v in (getattr(ref, name), getattr(cand, name)))
        if a != b:
            raise ValueError(f"reference {reference.path.name} and candidate {candidate.path.name} disagree on {name} "
                             f"({_short(a)} vs {_short(b)}); compare artifacts of the same export")


def check_unseen(reference, candidate, config: DriftConfig) -> None:
    """The drift scenes must not be scenes the model was trained on: the artifacts' metadata names the training
    scenes (training_scenes, written by python -m export; older artifacts say nothing, and are not checked).
    ValueError naming the artifact and both scene ranges otherwise."""
    from dualpath.seeds import SceneRange, check_disjoint

    n = max(config.n, config.sweep_n if config.severities else 0)
    wanted = [SceneRange(config.seed, 0, n, role=f"drift scenes (seed {config.seed})")]
    for backend in (reference, candidate):
        raw = backend.metadata.extra.get("training_scenes")
        if raw is None:
            continue
        try:
            if not isinstance(raw, list):
                raise ValueError(f"not a list: {raw!r}")
            used = [SceneRange.from_dict(r) for r in raw]
        except ValueError as e:
            raise ValueError(f"{backend.path}: its metadata's training_scenes is corrupt ({e}); export it again") from None
        check_disjoint(used, wanted, str(backend.path), fix="choose another --seed for the drift scenes")


def _short(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return "[" + ", ".join(map(str, value[:3])) + f", ... ({len(value)})]"
    return str(list(value) if isinstance(value, tuple) else value)


def evaluate(reference, candidate, config: DriftConfig, severity: float, n: int) -> tuple[dict, Any, dict, dict]:
    ds = drift_dataset(config.data_root, n, severity, config.seed, config.workers)
    ref = run_backend(reference, ds.noisy, config.batch_size)
    cand = run_backend(candidate, ds.noisy, config.batch_size)
    return compare(ds.labels, ds.clean, ref, cand), ds, ref, cand


def drift_report(reference, candidate, out: str | Path, config: DriftConfig = DriftConfig(),
                 budgets: Mapping[str, Budget] | None = None, baseline: Mapping[str, Any] | None = None,
                 names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Compare two loaded backends; write drift.json, drift.md and plots into `out`; return the result."""
    budgets = DEFAULT_BUDGETS if budgets is None else budgets
    check_same_contract(reference, candidate)
    check_unseen(reference, candidate, config)
    out = Path(out)
    with folder_lock(out, "drift check"):  # one writer per report folder: a second one exits 2
        return _drift_report(reference, candidate, out, config, budgets, baseline, names)


def _drift_report(reference, candidate, out: Path, config: DriftConfig, budgets: Mapping[str, Budget],
                  baseline: Mapping[str, Any] | None, names: Mapping[str, str] | None) -> dict[str, Any]:
    if baseline is not None:
        check_baseline(baseline, budgets)
    result, ds, ref, cand = evaluate(reference, candidate, config, config.severity, config.n)
    result["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    result["data"] = {"path": str(ds.path), "seed": ds.seed, "sha256_noisy": ds.manifest["files"]["noisy"]["sha256"]}
    result["artifacts"] = dict(names or {"reference": str(reference.path), "candidate": str(candidate.path)})
    # what each ran on: the backend, and OpenVINO's inference precision (bf16 / f16 are device defaults it may pick)
    result["runtimes"] = {role: {"backend": be.name, "inference_precision": getattr(be, "inference_precision", None)}
                          for role, be in (("reference", reference), ("candidate", candidate))}
    result["budgets"] = {m: b.to_dict() for m, b in budgets.items()}
    result["violations"] = check(budgets, result["reference"], result["candidate"], outputs=result["outputs"])
    if baseline is not None:
        result["baseline"] = baseline_check(baseline, result, config, budgets)
        result["violations"] += result["baseline"]["violations"]
    result["passed"] = not result["violations"]
    if config.severities:
        result["severity_sweep"] = severity_sweep(reference, candidate, config)
    with staged(out) as stage:  # a report is published whole or not at all: the old one stays until then
        if config.plots:
            result["plots"] = write_plots(stage, result, ds, ref, cand)
        (stage / "drift.json").write_text(json.dumps(_finite(result), indent=1) + "\n")
        (stage / "drift.md").write_text(markdown(result))
    return result


REPORT_FILES = ("drift.json", "drift.md")
PLOT_FILES = ("probs.png", "per_class_ap.png", "recon.png", "severity.png")  # write_plots' names
_STAGE = ".drift.tmp"


def report_files(out: str | Path) -> list[Path]:
    """Every file a report writes into `out` (for the check that none is a file the command reads)."""
    return [Path(out) / name for name in REPORT_FILES + PLOT_FILES]


class staged:
    """Write a report into a hidden folder inside `out` (.drift.tmpPID), then move its files into `out` at once
    (Ctrl-C and SIGTERM wait until they are all moved) and remove the plots of an older report that this one did not
    draw, so that drift.md never sits beside another run's plots. A report that fails or is interrupted leaves `out`
    as it was. Staging inside `out` keeps the moves renames on one file system, wherever `out` leads."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.stage = self.out / f"{_STAGE}{os.getpid()}"

    def __enter__(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob(f"{_STAGE}*"):  # those of killed runs
            pid = old.name[len(_STAGE):]
            if old.is_dir() and pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir()
        return self.stage

    def __exit__(self, kind, *exc) -> None:
        try:
            if kind is None:
                with interrupts_deferred():
                    written = {p.name for p in self.stage.iterdir()}
                    for name in REPORT_FILES + PLOT_FILES:
                        if name in written:
                            os.replace(self.stage / name, self.out / name)
                        elif name in PLOT_FILES:
                            (self.out / name).unlink(missing_ok=True)
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)


def check_baseline(baseline: Any, budgets: Mapping[str, Budget], source: str = "the baseline") -> None:
    """A baseline (an accepted drift.json) must hold what the gate reads: config.n / seed / severity and the
    candidate's value of every budgeted metric, as finite numbers. ValueError naming `source` and the field."""

    def bad(field: str, what: str, value: Any = None, missing: bool = False) -> ValueError:
        found = "it is missing" if missing else f"got {json.dumps(value)[:60]}"
        return ValueError(f"{source}: field {field} must be {what}, {found}; accept a baseline again with --accept "
                          "on an export you trust")

    if not isinstance(baseline, Mapping):
        kind = {list: "an array", type(None): "null", str: "a string"}.get(type(baseline), "a number")
        raise ValueError(f"{source} must be a JSON object (a drift.json), got {kind}; accept a baseline again with "
                         "--accept on an export you trust")
    for name in ("config", "candidate"):
        if name not in baseline:
            raise bad(name, "an object", missing=True)
        if not isinstance(baseline[name], Mapping):
            raise bad(name, "an object", baseline[name])
    for key in DriftConfig().identity():
        if key not in baseline["config"]:
            raise bad(f"config.{key}", "a number", missing=True)
        if not _finite_number(baseline["config"][key]):
            raise bad(f"config.{key}", "a number", baseline["config"][key])
    for metric in budgets:
        if metric in OUTPUT_KEYS:
            continue
        if metric not in baseline["candidate"]:
            raise bad(f"candidate.{metric}", "a finite number", missing=True)
        if not _finite_number(baseline["candidate"][metric]):
            raise bad(f"candidate.{metric}", "a finite number", baseline["candidate"][metric])
    if not isinstance(baseline.get("artifacts", {}), Mapping):
        raise bad("artifacts", "an object", baseline["artifacts"])


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def baseline_check(baseline: Mapping[str, Any], result: dict, config: DriftConfig,
                   budgets: Mapping[str, Budget]) -> dict[str, Any]:
    """The candidate against the last accepted candidate (a drift.json), on the same scenes. The budgets on the
    outputs (label_flip_rate) are the candidate's against its reference, not against the baseline."""
    check_baseline(baseline, budgets)
    theirs = {k: baseline.get("config", {}).get(k) for k in config.identity()}
    if theirs != config.identity():
        raise ValueError(
            f"the baseline was measured on other scenes ({theirs}) than this report ({config.identity()}); "
            "run with the same --n, --seed and --severity, or accept a new baseline"
        )
    accepted = baseline["candidate"]
    return {"artifact": baseline.get("artifacts", {}).get("candidate"), "candidate": accepted,
            "violations": check(budgets, accepted, result["candidate"], against="baseline")}


def severity_sweep(reference, candidate, config: DriftConfig) -> list[dict[str, Any]]:
    rows = []
    for severity in config.severities:
        r, *_ = evaluate(reference, candidate, config, severity, config.sweep_n)
        rows.append({"severity": severity, "n": r["n"], "reference": r["reference"], "candidate": r["candidate"],
                     "delta": r["delta"], "label_flip_rate": r["outputs"]["label_flip_rate"]})
    return rows


def write_plots(out: Path, result: dict, ds, ref: dict, cand: dict) -> list[str]:
    from dualpath import contract

    paths = [
        plots.probs_plot(ref[contract.OUTPUT_PROBS], cand[contract.OUTPUT_PROBS], out / "probs.png", "candidate"),
        plots.per_class_plot(result["per_class"], out / "per_class_ap.png"),
        plots.recon_plot(ds.noisy, ds.clean, ref[contract.OUTPUT_RECON], cand[contract.OUTPUT_RECON], out / "recon.png"),
    ]
    if result.get("severity_sweep"):
        paths.append(plots.severity_plot(result["severity_sweep"], HEADLINE_KEYS, out / "severity.png"))
    return [p.name for p in paths]


def summary_rows(result: Mapping[str, Any]) -> list[tuple[str, float, float, float]]:
    return [(m, result["reference"][m], result["candidate"][m], result["delta"][m]) for m in METRIC_KEYS]


def markdown(result: Mapping[str, Any]) -> str:
    a = result["artifacts"]
    lines = [
        "# Drift report", "",
        f"Reference `{a['reference']}` vs candidate `{a['candidate']}` on {result['n']} held-out generated scenes "
        f"(seed {result['data']['seed']}, severity {result['config']['severity']:g}).", "",
        f"**{'PASSED' if result['passed'] else 'FAILED'}**" + ("" if result["passed"] else ": " + "; ".join(result["violations"])),
        "", "| metric | reference | candidate | delta | budget |", "|---|---:|---:|---:|---|",
    ]
    for m, r, c, d in summary_rows(result):
        budget = result["budgets"].get(m)
        text = ", ".join(f"{k} {v:g}" for k, v in budget.items()) if budget else ""
        lines.append(f"| {m} | {r:.4f} | {c:.4f} | {d:+.4f} | {text} |")
    o = result["outputs"]
    lines += [
        "", "| output drift | value |", "|---|---:|",
        f"| scenes whose top-T labels changed | {o['label_flip_rate']:.2%}"
        + (f" (budget {result['budgets']['label_flip_rate']['abs']:.2%})" if "label_flip_rate" in result["budgets"] else "")
        + " |",
        f"| mean / max abs delta p | {o['mean_abs_delta_p']:.5f} / {o['max_abs_delta_p']:.4f} |",
        f"| mean / max abs delta recon | {o['mean_abs_delta_recon']:.5f} / {o['max_abs_delta_recon']:.4f} |",
        f"| SQNR probs / recon (dB) | {o['sqnr_probs_db']:.1f} / {o['sqnr_recon_db']:.1f} |",
    ]
    if "baseline" in result:
        lines += ["", f"Baseline (last accepted candidate `{result['baseline']['artifact']}`): "
                  + ("held" if not result["baseline"]["violations"] else "; ".join(result["baseline"]["violations"]))]
    lines += ["", "| class | support | AP reference | AP candidate | delta | flips |", "|---|---:|---:|---:|---:|---:|"]
    for row, flips in zip(result["per_class"], o["label_flips_per_class"]):
        fmt = lambda v, s="": "n/a" if v is None else f"{v:{s}.4f}"  # noqa: E731
        lines.append(f"| {row['name']} | {row['support']} | {fmt(row['ap_reference'])} | {fmt(row['ap_candidate'])} "
                     f"| {fmt(row['ap_delta'], '+')} | {flips} |")
    if result.get("severity_sweep"):
        lines += ["", "## Drift under degradation", "",
                  "| severity | n | " + " | ".join(f"{m} ref / cand / delta" for m in HEADLINE_KEYS) + " | label flips |",
                  "|---:|---:|" + "---|" * len(HEADLINE_KEYS) + "---:|"]
        for row in result["severity_sweep"]:
            cells = [f"{row['reference'][m]:.4f} / {row['candidate'][m]:.4f} / {row['delta'][m]:+.4f}" for m in HEADLINE_KEYS]
            lines.append(f"| {row['severity']:g} | {row['n']} | " + " | ".join(cells) + f" | {row['label_flip_rate']:.2%} |")
    lines += [""] + [f"![{p}]({p})" for p in result.get("plots", [])]
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> Any:
    """JSON has no inf/nan: SQNR of identical outputs is infinite, written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

