"""The export run: checkpoint -> FP32 ONNX (+ parity, enforced) -> every planned artifact, each by its format's step
(export.artifacts.FORMATS names the module) -> INT8 tuning (QAT, accuracy control; export.control_step) -> the drift
gate (export.gate_step) -> benchmark table -> manifest.json. Built in a staging folder and published at the end
(export.folder): the folder then holds exactly what the manifest lists.

A step is `step(config, ctx, artifacts) -> {artifact: recipe}`: it writes `artifacts` (planned ones of its format,
consecutive in export.artifacts.ARTIFACTS) into config.out, reading what earlier steps left in `ctx`
(export.context.Context) and adding its own manifest sections there.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from export.artifacts import Artifact
from dualpath.files import interrupts_deferred
from export.atomic import ensure_writable_folder, file_sha256
from export.config import ExportConfig
from export.context import Context, step_module, tuned
from export.metadata import check_checkpoint_contract, library_versions


def load_checked_checkpoint(path: Path):
    from train.checkpoint import load_model

    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m train --out runs/x` (runs/x/best.pt)")
    try:
        model, ckpt = load_model(path)
    except (ValueError, KeyError, RuntimeError) as e:  # torn file, foreign dict, state dict that does not fit
        raise ValueError(f"cannot use checkpoint {path}: {e}") from None
    check_checkpoint_contract(ckpt, str(path))
    return model, ckpt


def check_seeds(ckpt: dict, config: ExportConfig) -> None:
    """No scene this export calibrates, tunes or measures on is one the checkpoint was trained on (its data set,
    extra scenes and backbone pretraining stream, whatever their seeds; dualpath.seeds): ValueError otherwise."""
    from dualpath.seeds import ACCURACY_CONTROL_SEED, DRIFT_SEED, SceneRange, check_disjoint, training_ranges
    from export.control_step import VALIDATION_N

    train_config = ckpt.get("train_config")
    used = training_ranges(train_config if isinstance(train_config, dict) else None)
    calib, drift = config.calibration, config.drift
    wanted = [SceneRange(DRIFT_SEED, 0, config.parity_n, role="parity scenes")]
    if config.int8:
        wanted.append(SceneRange(calib.seed, 0, calib.n, role="calibration scenes (--calib-seed)"))
    if config.accuracy_control:
        wanted.append(SceneRange(ACCURACY_CONTROL_SEED, 0, min(drift.n, VALIDATION_N), role="accuracy-control scenes"))
    if any(a.reference for a in config.artifacts.values()):
        n = max(drift.n, drift.sweep_n if drift.severities else 0)
        wanted.append(SceneRange(DRIFT_SEED, 0, n, role="drift scenes"))
    check_disjoint(used, wanted, str(config.checkpoint),
                   fix=f"train on a data set of another seed (calibration uses {calib.seed}, accuracy control "
                       f"{ACCURACY_CONTROL_SEED}, drift {DRIFT_SEED}), or pass another --calib-seed")


def run_export(config: ExportConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole export; returns the manifest (also written to out/manifest.json). Built in a staging folder inside
    config.out and published when complete; the previous export's files (and only those) are replaced."""
    from dualpath.files import folder_lock
    from export.folder import check_publishable, planned_names, previous_files, publish, staging
    from export.gate_step import check_baseline_scenes, read_baseline
    from export.openvino_export import record_inference_precisions

    ensure_writable_folder(config.out)
    with folder_lock(config.out, "export"):  # one writer per export folder (a second export: exit 2)
        previous = previous_files(config.out)
        check_publishable(config.out, planned_names(config), previous)  # drift/ a file, a link elsewhere, a mount...
        baseline = read_baseline(config.baseline) if config.baseline else None
        if baseline:
            check_baseline_scenes(baseline, config)
        model, ckpt = load_checked_checkpoint(config.checkpoint)
        check_seeds(ckpt, config)
        # onnx's nanobind module aborts the process (exit -6, not 130) when a Ctrl-C lands inside its import (seen in
        # CI): imported whole here, before the staging folder exists, a Ctrl-C is raised once the import is done
        with interrupts_deferred():
            import onnx  # noqa: F401
        with staging(config.out) as stage:
            staged_log = lambda line: log(line.replace(str(stage), str(config.out)))  # noqa: E731
            ctx = Context(model, ckpt, staged_log, budgets=config.budgets or default_budgets(), baseline=baseline)
            manifest = build_all(dataclasses.replace(config, out=stage), ctx)
            record_inference_precisions(stage, manifest)  # the OpenVINO IRs' (FP16: f32 on CPUs), in their recipes
            publish(stage, config.out, previous, manifest)
        log(f"manifest: {config.out / 'manifest.json'}")
        return manifest


def default_budgets() -> dict:
    from runtime.drift.budgets import DEFAULT_BUDGETS

    return dict(DEFAULT_BUDGETS)


def build_all(config: ExportConfig, ctx: Context) -> dict[str, Any]:
    """Every planned artifact by its format's step, the INT8 tuning once the last artifact it tunes is written, then
    the gate and the benchmark; returns the manifest (ctx.manifest)."""
    from export.folder import MANIFEST_FORMAT

    ctx.manifest |= {
        "format": MANIFEST_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": {"path": str(config.checkpoint), "sha256": file_sha256(config.checkpoint),
                       "epoch": ctx.ckpt.get("epoch"), "model_config": ctx.ckpt.get("model_config")},
        "versions": library_versions(),
    }
    try:
        for step, artifacts in steps(config):
            recipes = step(config, ctx, artifacts)  # first: the FP32 ONNX's sections come before "recipes"
            ctx.recipes.update(recipes)
    finally:
        ctx.close()
    if config.benchmark:
        from export.benchmark import run_benchmark

        ctx.manifest["benchmark"] = run_benchmark(config.out, ctx.manifest, config.bench, log=ctx.log)
    return ctx.manifest


Step = Callable[[ExportConfig, Context, list[Artifact]], dict[str, Any]]


def steps(config: ExportConfig) -> Iterator[tuple[Step, list[Artifact]]]:
    """(step, its artifacts) in the order they run: each format's step for each run of its consecutive planned
    artifacts (export.artifacts.ARTIFACTS order: an artifact comes after what it is built from), the INT8 tuning
    right after the last artifact it tunes (so what is built from a tuned artifact comes after), the gate last."""
    from export import control_step, gate_step

    planned = list(config.artifacts.values())
    last_tuned = max((planned.index(a) for a in tuned(config)), default=-1)
    start = 0
    for i, a in enumerate(planned):
        if i == last_tuned or i + 1 == len(planned) or planned[i + 1].format != a.format:
            yield step_module(a.format).step, planned[start:i + 1]
            start = i + 1
        if i == last_tuned:
            yield control_step.step, tuned(config)
    yield gate_step.step, planned
