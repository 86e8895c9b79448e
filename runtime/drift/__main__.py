"""python -m runtime.drift: reference vs candidate on held-out generated scenes; exit 1 past a budget."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dualpath import exitcodes
from dualpath.cli import default, fill  # telemetry off, before anything imports openvino / nncf / onnxruntime


def build_parser() -> argparse.ArgumentParser:
    """DriftConfig's fields as flags (dest = field, default = the field's; --no-plots: plots), then the gate's."""
    from dualpath.metrics import METRIC_KEYS
    from runtime.drift.budgets import DEFAULT_BUDGETS
    from runtime.drift.report import DriftConfig

    def d(name: str):
        return default(DriftConfig, name)

    p = argparse.ArgumentParser(
        prog="python -m runtime.drift",
        description="Run a reference (FP32) and a candidate (e.g. INT8) artifact on the same held-out generated "
        "scenes and report how far the candidate drifts: both heads' metrics and deltas, per-class AP, label "
        "flips, |delta p|, SQNR, reconstructions. Exit code 1 when a budget is exceeded, 2 on errors.",
        epilog="budgets: --budget accuracy=0.003 (absolute drop) --budget macro_map=1% (relative) or a JSON file "
        '{"accuracy": {"abs": 0.003}}, on any metric of ' + ", ".join(METRIC_KEYS) + ". Default (docs/design.md): "
        + " ".join(b.flag() for b in DEFAULT_BUDGETS.values()) + ".",
    )
    p.add_argument("--reference", type=Path, required=True, help="FP32 artifact (.onnx, .xml, .engine)")
    p.add_argument("--candidate", type=Path, required=True, help="artifact to check against it")
    p.add_argument("--out", type=Path, required=True, help="report folder (drift.json, drift.md, plots)")
    p.add_argument("--n", type=int, default=d("n"), help=f"held-out scenes (default {d('n')})")
    p.add_argument("--seed", type=int, default=d("seed"), help=f"drift set seed (default {d('seed')})")
    p.add_argument("--severity", type=float, default=d("severity"), help="degradation of the main set (1 = training mix)")
    p.add_argument("--severities", type=_floats, default=d("severities"), help="sweep, e.g. 0,1,2,3 (empty: no sweep)")
    p.add_argument("--sweep-n", type=int, default=d("sweep_n"), help="scenes per sweep level")
    p.add_argument("--data-root", type=Path, default=d("data_root"), help="where drift scene sets are cached")
    p.add_argument("--budget", action="append", default=[], metavar="METRIC=LIMIT",
                   help="that metric's budget (label_flip_rate=0.05 for the share of scenes changing top-T labels); "
                   "the other metrics keep their defaults")
    p.add_argument("--budgets-file", type=Path, help="JSON budgets on top of the defaults (flags override it)")
    p.add_argument("--baseline", type=Path, help="drift.json of the last accepted export; also gate against it")
    p.add_argument("--accept", type=Path, metavar="PATH", help="when the report passes, write it here as the new baseline")
    p.add_argument("--reference-backend", default="auto")
    p.add_argument("--candidate-backend", default="auto")
    p.add_argument("--threads", type=int, help="inference threads per backend")
    p.add_argument("--workers", type=int, default=d("workers"), help="processes generating scenes")
    p.add_argument("--no-plots", action="store_true")
    return p


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dualpath.scenes import DatasetError
    from runtime.backends import BackendError, load_backend
    from runtime.drift.budgets import budgets_from_args
    from runtime.drift.report import DriftConfig, drift_report

    try:
        config = fill(DriftConfig, args, plots=not args.no_plots)
        budgets = budgets_from_args(args)
        check_outputs(args)
        baseline = _read_baseline(args.baseline, budgets) if args.baseline else None
        options = {"threads": args.threads} if args.threads else {}
        with load_backend(args.reference, args.reference_backend, **options) as ref, \
                load_backend(args.candidate, args.candidate_backend, **options) as cand:
            result = drift_report(ref, cand, args.out, config, budgets, baseline)
    except (ValueError, BackendError, DatasetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:  # the report is staged inside --out and published whole, or not at all
        print(f"interrupted: nothing half-written was left in {args.out} (it holds the report it held before, if "
              "any); run the command again", file=sys.stderr)
        return exitcodes.INTERRUPTED
    print(summary(result))
    print(f"report: {args.out / 'drift.md'}")
    if not result["passed"]:
        print("PAST BUDGET: " + "; ".join(result["violations"]), file=sys.stderr)
        return exitcodes.VERDICT
    if args.accept:
        try:
            _accept(args.out / "drift.json", args.accept)
        except OSError as e:
            print(f"error: cannot write the baseline {args.accept}: {e.strerror or e}", file=sys.stderr)
            return exitcodes.BAD_INPUT
        except KeyboardInterrupt:  # written atomically: the old baseline, or the new one whole
            print(f"interrupted: the report in {args.out} is whole; the baseline {args.accept} was not replaced "
                  "(or was, whole)", file=sys.stderr)
            return exitcodes.INTERRUPTED
        print(f"accepted as baseline: {args.accept}")
    return exitcodes.OK


def summary(result: dict) -> str:
    from runtime.drift.report import summary_rows

    lines = [f"{'metric':<14}{'reference':>11}{'candidate':>11}{'delta':>10}"]
    lines += [f"{m:<14}{r:>11.4f}{c:>11.4f}{d:>+10.4f}" for m, r, c, d in summary_rows(result)]
    o = result["outputs"]
    lines.append(f"label flips {o['label_flip_rate']:.2%}, mean |dp| {o['mean_abs_delta_p']:.5f}, "
                 f"SQNR probs {o['sqnr_probs_db']:.1f} dB, recon {o['sqnr_recon_db']:.1f} dB")
    return "\n".join(lines)


def check_outputs(args) -> None:
    """Before any work: --out can be written into, and no file of the report (nor --accept) is a file this command
    reads (the models and their .bin / sidecars, --baseline, --budgets-file). --accept may name --baseline: replacing
    the baseline by a report that passed it is what --accept is for (atomically, only after it passed)."""
    from dualpath.files import check_writable, refuse_output_over_input
    from runtime.backends import model_files
    from runtime.drift.report import report_files

    check_writable(args.out, "into", "--out")
    inputs = {"--reference": model_files(args.reference), "--candidate": model_files(args.candidate),
              "--budgets-file": args.budgets_file}
    refuse_output_over_input({"--out": report_files(args.out)}, inputs | {"--baseline": args.baseline},
                             error=ValueError)
    refuse_output_over_input({"--out": report_files(args.out), "--accept": args.accept}, inputs, error=ValueError)
    if args.accept:
        check_writable(args.accept, "file", "--accept")


def _read_baseline(path: Path, budgets) -> dict:
    from dualpath.files import read_json
    from runtime.drift.report import check_baseline

    data = read_json(path, ValueError,
                     missing=f"no baseline at {path}; make one with --accept {path} on an export you trust",
                     corrupt=f"baseline {path} is not valid JSON ({{error}})")
    check_baseline(data, budgets, source=f"baseline {path}")
    return data


def _accept(report: Path, baseline: Path) -> None:
    from dualpath.files import atomic_path

    baseline.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(baseline) as tmp:
        tmp.write_bytes(report.read_bytes())


if __name__ == "__main__":
    raise SystemExit(main())
