"""The commands' configs from their flags (issue 22): runtime, runtime.drift, calibration and the scene generator fill
their configs with dualpath.cli (one helper) and read their defaults off them; each gives what its field-by-field copy
gave before."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dualpath.cli import fill


@pytest.mark.parametrize("argv", [
    [],
    ["--backend", "onnxruntime", "--headless", "--jsonl", "o.jsonl", "--save", "o.avi", "--max-frames", "50",
     "--threshold", "0.3", "--top", "3", "--smooth", "0.5", "--threads", "2", "--retries", "1", "--loop",
     "--timeout", "4", "--max-bad-frames", "7", "--warmup", "5"],
    ["--benchmark", "--benchmark-json", "b.json"],
])
def test_runtime(argv):
    from runtime.__main__ import build_parser
    from runtime.app import RunConfig

    args = build_parser().parse_args(["--model", "m.onnx", "--source", "clip.mp4", *argv])
    before = RunConfig(
        model=args.model, source=args.source, backend=args.backend, headless=args.headless or args.benchmark,
        jsonl=args.jsonl, save=args.save, max_frames=args.max_frames, threshold=args.threshold, top=args.top,
        smooth=args.smooth, retries=args.retries, loop=args.loop, benchmark=args.benchmark,
        benchmark_json=args.benchmark_json, warmup=args.warmup, threads=args.threads,
        max_bad_frames=args.max_bad_frames, timeout=args.timeout)
    assert fill(RunConfig, args, headless=args.headless or args.benchmark) == before
    if not argv:
        assert before == RunConfig(model="m.onnx", source="clip.mp4")  # the flags' defaults are RunConfig's


@pytest.mark.parametrize("argv", [[], ["--n", "40", "--seed", "7", "--severity", "2", "--severities", "0,1",
                                       "--sweep-n", "30", "--data-root", "d", "--workers", "2", "--no-plots"]])
def test_drift(argv):
    from runtime.drift.__main__ import build_parser
    from runtime.drift.report import DriftConfig

    args = build_parser().parse_args(["--reference", "a.onnx", "--candidate", "b.onnx", "--out", "o", *argv])
    before = DriftConfig(n=args.n, severity=args.severity, seed=args.seed, severities=args.severities,
                         sweep_n=args.sweep_n, data_root=args.data_root, workers=args.workers, plots=not args.no_plots)
    assert fill(DriftConfig, args, plots=not args.no_plots) == before
    if not argv:
        assert before == DriftConfig()


@pytest.mark.parametrize("argv", [[], ["--n", "12", "--seed", "20000123"]])
def test_calibration(argv):
    from calibration.__main__ import build_parser
    from calibration.sets import CalibrationConfig

    args = build_parser().parse_args(["--out", "o", *argv])
    assert fill(CalibrationConfig, args) == CalibrationConfig(n=args.n, seed=args.seed)
    if not argv:
        assert fill(CalibrationConfig, args) == CalibrationConfig()


def _scenes_before(args, base):  # dualpath/scenes/__main__.py's copy before issue 22
    changes = {}
    if args.object_bank:
        changes["object_bank"] = str(args.object_bank)
    if args.background_dir:
        changes["background_dir"] = str(args.background_dir)
    if args.cardinality:
        changes["cardinality_weights"] = tuple(float(x) for x in args.cardinality.split(","))
    cfg = dataclasses.replace(base, **changes)
    if args.severity is not None:
        cfg = cfg.with_severity(args.severity)
    for name in ("motion_blur_p", "jpeg_p"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, **{name: getattr(args, name)}))
    return cfg


@pytest.mark.parametrize("argv", [
    [],
    ["--severity", "2", "--cardinality", "0.5,0.5", "--motion-blur-p", "0.2", "--jpeg-p", "0.3",
     "--objects", "bank.npz", "--backgrounds", "photos"],
    ["--objects", "", "--backgrounds", "", "--severity", "0"],
])
@pytest.mark.parametrize("config_file", [False, True])
def test_scenes(argv, config_file, tmp_path):
    from dualpath.scenes.__main__ import _config_from_args, build_parser
    from dualpath.scenes.config import SceneConfig

    base = SceneConfig()
    if config_file:  # a --config file's settings stay under the flags
        base = dataclasses.replace(base, object_bank="mine.npz", flip_p=0.1,
                                   degrade=dataclasses.replace(base.degrade, jpeg_p=0.9, noise_std=(0.0, 0.01)))
        path = tmp_path / "scenes.json"
        path.write_text(json.dumps(base.to_dict()))
        argv = [*argv, "--config", str(path)]
    args = build_parser().parse_args(["generate", *argv])
    assert _config_from_args(args) == _scenes_before(args, base)

