"""python -m export: a trained checkpoint -> deployable FP32 and INT8 artifacts, a manifest and drift reports."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dualpath.cli import comma_list, default, fill  # first: a command's telemetry is off (dualpath.cli)
from dualpath import exitcodes
from export.artifacts import FORMATS, missing_packages, unknown_formats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a dualpath checkpoint to ONNX FP32 (with metadata and a parity check against torch, "
        "enforced), and with --int8 to QDQ INT8 ONNX (u8: ONNX Runtime CPU, s8: TensorRT) and OpenVINO IR INT8 (NNCF), "
        "with --fp16 to FP16 ONNX and OpenVINO IR, with --bf16 to an OpenVINO IR run in bf16 on CPUs, TensorRT engines where TensorRT runs (else a build script for the "
        "device), calibrated on generated scenes; then drift reports of every INT8 / FP16 artifact, an optional "
        "benchmark table and manifest.json, which lists exactly the files this export wrote (a previous export's are "
        "replaced, other files left alone). Exit 1 when the FP32 model does not match torch, accuracy control cannot "
        "meet its budgets or an artifact is past its drift budget; 2 on errors. OpenVINO / NNCF telemetry is off "
        "(DUALPATH_TELEMETRY=1 opts in).",
        epilog="example: python -m export --checkpoint runs/x/best.pt --out runs/x/export --int8 --fp16 "
        "--accuracy-control --benchmark",
    )
    from export.config import ExportConfig
    from export.onnx_fp32 import EXPORTERS
    from export.openvino_export import ACTIVATION_RANGES, OV_INT8
    from export.qat_step import QAT_MODES, QAT_OBJECTIVES
    from export.quantize_onnx import CALIB_METHODS, U8_WEIGHT_BITS

    def d(name: str):  # ExportConfig's default: the flags' defaults are its (dualpath.cli.fill leaves unset ones)
        return default(ExportConfig, name)

    calib, control, drift, bench = d("calibration"), d("control"), d("drift"), d("bench")
    p.add_argument("--checkpoint", type=Path, required=True, help="a training checkpoint (runs/x/best.pt)")
    p.add_argument("--out", type=Path, required=True, help="folder for the artifacts")
    p.add_argument("--int8", action="store_true", help="also write INT8 artifacts and their drift reports")
    p.add_argument("--backends", default=",".join(d("backends")), type=formats,
                   help="comma list of what to write (the FP32 ONNX is always written): "
                   + "; ".join(f"{name}: {f.help}" for name, f in FORMATS.items())
                   + f" (default {','.join(d('backends'))})")
    p.add_argument("--calib-n", type=int, help=f"calibration scenes (default {calib.n})")
    p.add_argument("--calib-method", choices=CALIB_METHODS,
                   help=f"how each activation's INT8 range is set, for the QDQ models and (through the u8 model) "
                        f"OpenVINO's: percentile = its 99.99th, so rare outliers cannot stretch it; minmax = the "
                        f"whole observed range (default {d('calib_method')})")
    p.add_argument("--ov-int8", choices=OV_INT8,
                   help="OpenVINO INT8 IR: qdq converts the export's u8 (else s8) QDQ model, the same graph and "
                        "scales (default: it held the budgets on both measured models); nncf quantizes with NNCF")
    p.add_argument("--ov-ranges", choices=ACTIVATION_RANGES,
                   help="with --ov-int8 nncf, its activation ranges: minmax keeps the whole observed range (default; "
                        "less mAP drift here), mean_minmax is NNCF's own default (averages each scene's min and max)")
    p.add_argument("--calib-seed", type=int, help="calibration seed (default calibration.CALIBRATION_SEED)")
    p.add_argument("--qdq-variants", type=comma_list, help="QDQ ONNX variants: u8 (ORT CPU), s8 (TensorRT)")
    p.add_argument("--u8-weights", type=int, choices=U8_WEIGHT_BITS,
                   help=f"bits of the u8 model's weights, and so of the OpenVINO INT8 IR's: 8 for CPUs with VNNI or "
                        f"AMX (fewer label flips), 7 for CPUs with AVX2 only, where 8-bit weights can saturate "
                        f"(default {d('u8_weights')})")
    p.add_argument("--fp16", action="store_true",
                   help="also write FP16 artifacts (ONNX for ONNX Runtime GPU / TensorRT, OpenVINO IR with FP16 "
                        "weights; a TensorRT FP16 engine with tensorrt) and their drift reports")
    p.add_argument("--bf16", action="store_true",
                   help="also write model_bf16.xml (with --backends openvino): the FP32 IR, its metadata asking CPUs "
                        "for bf16 compute (AVX512_BF16 / AMX; a CPU without native bf16 computes f32, which its "
                        "recipe and the benchmark say), with its drift report against model_fp32.xml run in f32")
    p.add_argument("--accuracy-control", action="store_true",
                   help="for each INT8 artifact past its budgets on 500 validation scenes: quantization-aware "
                        "fine-tuning (--qat auto), then the most sensitive layers back to float until they hold")
    p.add_argument("--qat", choices=QAT_MODES,
                   help="quantization-aware fine-tuning on training scenes, mirroring the s8 QDQ graph (export.qat): "
                        "auto: accuracy control's fallback for an artifact that post-training quantization leaves "
                        "past its budget (default); always: every INT8 artifact from QAT-tuned weights; never")
    p.add_argument("--qat-minutes", type=float,
                   help=f"QAT's time box in minutes (default {d('qat_minutes'):g}; the steps are sized to it)")
    p.add_argument("--qat-scenes", type=int,
                   help="training scenes QAT renders once and cycles through, from the checkpoint's extra-training "
                        f"seed (never a calibration, accuracy-control or drift seed; default {d('qat_scenes')})")
    p.add_argument("--qat-objective", choices=QAT_OBJECTIVES,
                   help="QAT's targets: train: the training loss on the scenes' labels and clean images (default); "
                        "distill: the same loss towards the FP32 model's own outputs; both: their sum")
    p.add_argument("--min-int8-share", type=float,
                   help=f"accuracy control keeps at least this share of convolutions / gemms in INT8 (default "
                        f"{control.min_int8_share:g}); when the budgets need more in float it keeps its best round "
                        "and the export exits 1")
    p.add_argument("--control-margin", type=float,
                   help="accuracy control aims at this share of each budget on its validation scenes, so the "
                        f"drift gate on other scenes passes with room (default {control.margin:g})")
    p.add_argument("--drift-n", type=int, help=f"held-out scenes per drift report (default {drift.n})")
    p.add_argument("--severities", type=severities, help="degradation sweep in the drift reports ('' for none)")
    p.add_argument("--sweep-n", type=int, help="scenes per sweep level")
    p.add_argument("--budget", action="append", default=[], metavar="METRIC=LIMIT",
                   help="drift budget, e.g. accuracy=0.003 or macro_map=1%% (default: docs/design.md's)")
    p.add_argument("--budgets-file", type=Path, help="JSON budgets {metric: {abs, rel}}")
    p.add_argument("--baseline", type=Path,
                   help="a previous export you accepted (its folder or manifest.json): every drift report also gates "
                        "against that export's report of the same artifact")
    p.add_argument("--parity-tol", type=float,
                   help=f"largest |FP32 ONNX - torch| of either output on the parity scenes (default "
                        f"{d('parity_tol'):g}); past it the export fails (exit 1)")
    p.add_argument("--benchmark", action="store_true",
                   help="time every artifact, each in its own process: size, batch-1 p50/p95/p99 latency, batch-32 "
                        "throughput and drift deltas in benchmark.md + benchmark.json (python -m export.benchmark "
                        "does it for an existing export)")
    p.add_argument("--bench-threads", type=int, help=f"inference threads when benchmarking (default {bench.threads})")
    p.add_argument("--bench-iters", type=int, help=f"batch-1 calls per artifact (default {bench.iters})")
    p.add_argument("--bench-rounds", type=int,
                   help=f"benchmark rounds, each artifact in a fresh process every round (default {bench.rounds})")
    p.add_argument("--exporter", choices=EXPORTERS)
    p.add_argument("--opset", type=int, help=f"ONNX opset (default {d('opset')})")
    p.add_argument("--data-root", type=Path, help="cache of calibration / drift scenes")
    p.add_argument("--workers", type=int, help="processes generating scenes")
    p.add_argument("--threads", type=int, help="inference threads while checking artifacts")
    p.add_argument("--max-batch", type=int, help="TensorRT optimisation profile's largest batch")
    return p


def config_from_args(args):
    """The ExportConfig of parsed flags (dualpath.cli.fill: each flag its field, --calib-n calibration.n...)."""
    from export.config import ExportConfig
    from runtime.drift.budgets import budgets_from_args

    return fill(ExportConfig, args, budgets=budgets_from_args(args))


def severities(text: str) -> tuple[float, ...]:
    """--severities: comma-separated numbers ('' for none); anything else is a usage error (exit 2)."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers in [0, 4], got {text!r}") from None


def formats(text: str) -> tuple[str, ...]:
    """--backends: comma-separated names of export.artifacts.FORMATS (an unknown one is a usage error, exit 2)."""
    names = comma_list(text)
    if unknown_formats(names):
        raise argparse.ArgumentTypeError(unknown_formats(names))
    return names


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        missing = _missing_packages(args.backends, args.int8)
        if missing:
            raise ImportError(missing)
        config = config_from_args(args)
        from export.context import ExportFailed
        from export.pipeline import run_export
        try:
            manifest = run_export(config)
        except ExportFailed as e:
            print(f"FAILED: {e}", file=sys.stderr)
            return exitcodes.VERDICT
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except (ValueError, FileNotFoundError, PermissionError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:  # the staging folder and every temporary are gone; publishing finishes or restores
        print(f"interrupted: nothing half-written was left in {args.out} (it holds what it held before, or this "
              "export whole if it was already published); run the command again", file=sys.stderr)
        return exitcodes.INTERRUPTED
    return verdict(manifest, args.accuracy_control)


def verdict(manifest: dict, accuracy_control: bool) -> int:
    """Exit 1 when accuracy control could not meet its budgets or an artifact is past its drift budget."""
    code = exitcodes.OK
    for name, r in manifest.get("accuracy_control", {}).get("artifacts", {}).items():
        if not r["met"]:
            graph = manifest["recipes"].get(name, {}).get("graph", {})
            print(f"BUDGET NOT MET: {name} after accuracy control (best of {len(r['rounds'])} rounds kept: "
                  f"{len(r['kept_in_float'])} layers in float, {graph.get('conv_gemm_int8')}/{graph.get('conv_gemm_total')} "
                  f"conv/gemm INT8, at least {manifest['accuracy_control']['min_int8_share']:.0%} required): "
                  + "; ".join(r["violations"]), file=sys.stderr)
            code = exitcodes.VERDICT
    failed = [name for name, r in manifest.get("drift", {}).items() if not r["passed"]]
    if failed:
        hint = "even with --accuracy-control" if accuracy_control else "try --accuracy-control"
        print(f"PAST BUDGET: {', '.join(failed)} (see their drift reports; {hint})", file=sys.stderr)
        code = exitcodes.VERDICT
    return code


def _missing_packages(backends: tuple[str, ...], int8: bool) -> str:
    """A message naming what to install for the asked formats (TensorRT is optional: a script is written)."""
    missing = missing_packages(backends, int8)
    if not missing:
        return ""
    return (f"python -m export needs {', '.join(missing)}: pip install -e '.[train,export]' "
            f"(or drop the backend with --backends)")


if __name__ == "__main__":
    raise SystemExit(main())
