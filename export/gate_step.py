"""The gate, the export's last step: a drift report of every INT8 / FP16 artifact against its FP32 reference on
held-out scenes (runtime.drift), against docs/design.md's budgets or the config's, and against the accepted export's own
reports with --baseline; the s8 model also as a TensorRT --fp16 engine runs it, and each QDQ model's per-tensor error
(export.int8_checks). Past a budget the export exits 1 (export.__main__.verdict)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from export.artifacts import Artifact
from export.context import Context, drift_pairs, qdq_variants


def step(config, ctx: Context, artifacts: list[Artifact]) -> dict[str, Any]:
    """Drift reports of those of `artifacts` that were written; adds budgets and drift to the manifest."""
    from export import int8_checks

    pairs = {name: ref for name, ref in drift_pairs(config).items() if name in {a.name for a in artifacts}}
    if not pairs:
        return {}
    ctx.manifest["budgets"] = {m: b.to_dict() for m, b in ctx.budgets.items()}
    ctx.manifest["drift"] = drift_reports(config, ctx.budgets, pairs, ctx.baseline)
    if config.int8:
        int8_checks.fp16_simulation(config, config.drift, ctx.budgets, ctx.manifest["drift"], ctx.log)
        int8_checks.layer_reports(config, ctx.manifest["drift"], ctx.calibration(config), qdq_variants(config))
    ctx.log(summary_table(ctx.manifest["drift"]))
    return {}


def read_baseline(path: Path) -> dict[str, dict]:
    """A previous export (its folder or manifest.json) -> {artifact: its drift.json}, read before anything is
    replaced (the baseline may be the folder being exported into)."""
    from dualpath.files import inside, read_json

    manifest_path = path / "manifest.json" if path.is_dir() else path
    manifest = read_json(manifest_path, ValueError, missing=f"no export manifest at {manifest_path}; --baseline takes "
                         "the folder (or manifest.json) of an export you accepted",
                         corrupt=f"{manifest_path} is not valid JSON ({{error}})")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("drift"), dict) or not manifest["drift"]:
        raise ValueError(f"{manifest_path} holds no drift reports; --baseline needs an export made with --int8 or --fp16")
    reports = {}
    for name, r in manifest["drift"].items():
        report = r.get("report") if isinstance(r, dict) else None
        what = f"{manifest_path}'s drift report of {name}"
        inside(manifest_path.parent, report, what)  # a relative folder name, then its drift.json, links resolved
        reports[name] = read_json(inside(manifest_path.parent, f"{report}/drift.json", what), ValueError,
                                  missing=f"the baseline's drift report {report}/drift.json is missing; export it again",
                                  corrupt=f"the baseline's {report}/drift.json is corrupt ({{error}})", expect=dict)
    return reports


def check_baseline_scenes(baseline: dict[str, dict], config) -> None:
    """A baseline measured on other drift scenes cannot gate this export: say so before any work is done."""
    ours = config.drift.identity()
    for name, report in baseline.items():
        theirs = {k: (report.get("config") or {}).get(k) for k in ours}
        if theirs != ours:
            raise ValueError(f"the baseline's {name} was measured on other drift scenes ({theirs}) than this export's "
                             f"({ours}); use the same --drift-n, or export without --baseline and accept a new one")


def drift_reports(config, budgets, pairs: dict[str, str], baseline: dict[str, dict] | None) -> dict[str, Any]:
    from runtime.backends import load_backend
    from runtime.drift.report import drift_report

    results = {}
    for cand_name, ref_name in pairs.items():
        folder = config.out / "drift" / cand_name.replace(".", "_")  # model_fp16.onnx and .xml: two reports
        against = (baseline or {}).get(cand_name)
        with load_backend(config.out / ref_name, threads=config.threads) as ref, \
                load_backend(config.out / cand_name, **({} if cand_name.endswith(".engine") else {"threads": config.threads})) as cand:
            r = drift_report(ref, cand, folder, config.drift, budgets, baseline=against,
                             names={"reference": ref_name, "candidate": cand_name})
        results[cand_name] = {"reference": ref_name, "report": str(folder.relative_to(config.out)), "passed": r["passed"],
                              "violations": r["violations"], "delta": r["delta"], "candidate": r["candidate"],
                              "reference_metrics": r["reference"], "baseline": "baseline" in r,
                              "outputs": {k: v for k, v in r["outputs"].items() if k != "label_flips_per_class"}}
    return results


def summary_table(drift: dict[str, Any]) -> str:
    from dualpath.metrics import HEADLINE_KEYS

    metrics = HEADLINE_KEYS
    lines = [f"{'artifact':<24}" + "".join(f"{'d ' + m:>12}" for m in metrics) + f"{'flips':>8}{'SQNR p':>8}  status"]
    for name, r in drift.items():
        sq = r["outputs"]["sqnr_probs_db"]
        lines.append(f"{name:<24}" + "".join(f"{r['delta'][m]:>+12.4f}" for m in metrics)
                     + f"{r['outputs']['label_flip_rate']:>8.2%}{sq if sq is None else round(sq, 1):>8}  "
                     + ("ok" if r["passed"] else "PAST BUDGET"))
    return "\n".join(lines)
