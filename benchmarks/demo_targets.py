"""Does a finished `cpu`-preset run meet docs/design.md's recognition targets? One table, one JSON, exit 1 if not.

    python -m benchmarks.demo_targets --run runs/demo [--demo-minutes 11.8] [--out benchmarks/results/demo_targets.json]

`make demo` runs it last (with --demo-started, into runs/demo/targets.json) and prints its verdict.

Reads what the run folder already holds: metrics.json (the held-out test, the default split of the 6000 scenes, and
the per-class report of the run's best.pt), config.json (which weights it started from) and each fold's log.csv
(seconds per epoch: the training time, the held-out evaluation not included). The targets depend on the start
(docs/design.md, "Performance targets"):
  from the shipped scene-pretrained backbone (make demo's model): the paper's numbers, macro mAP >= 0.8925 and top-T
  accuracy >= 0.9672, with SSIM >= 0.80 and no class below 0.70 AP;
  from random init (--pretrained none): macro mAP >= 0.55, top-T accuracy >= 0.90, SSIM >= 0.72 (ahead of the plain
  small CNN of the same wall time: 0.536 / 0.902);
and in both, training <= 12 minutes (on an idle 2-core box: the figure only means that where it was measured so) and,
with --demo-minutes (the wall time of the whole `make demo`, which `make demo` passes), `make demo` <= 20 minutes.
Exit codes: 0 every target met, 1 one missed, 2 a run folder that is not a finished run.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from benchmarks import save_results
from dualpath import exitcodes
from dualpath.files import read_json
from dualpath.machine import describe, headline

# (metric, at least) per start, and the least AP of any class (None: not a target); "minutes" limits are upper bounds.
TARGETS = {
    "pretrained": {"macro_map": 0.8925, "accuracy": 0.9672, "ssim": 0.80},
    "scratch": {"macro_map": 0.55, "accuracy": 0.90, "ssim": 0.72},
}
CLASS_AP = {"pretrained": 0.70, "scratch": None}
TRAINING_MINUTES, DEMO_MINUTES = 12.0, 20.0


class NotARun(ValueError):
    """The folder is not a finished training run."""


HOW = "train one with `python -m train --preset cpu --out DIR`"


def run_json(run: Path, name: str) -> dict:
    """A run folder's JSON file `name` (an object); NotARun saying what is missing or unreadable."""
    try:
        return read_json(run / name, NotARun, f"{run} is not a finished training run (no {name}); {HOW}",
                         f"{run} is not a finished training run ({name}: {{error}}); {HOW}", expect=dict)
    except OSError as e:
        raise NotARun(f"{run} is not a finished training run ({e}); {HOW}") from e


def read_run(run: Path) -> dict:
    """Held-out metrics, the weights it started from and the training minutes of a finished run folder."""
    if not run.is_dir():
        raise NotARun(f"{run} is not a finished training run (not a folder); {HOW}")
    metrics, config = run_json(run, "metrics.json"), run_json(run, "config.json").get("train_config")
    if not isinstance(config, dict):
        raise NotARun(f"{run} is not a finished training run (config.json has no train_config); {HOW}")
    logs = sorted(run.glob("fold*/log.csv"))
    if not logs:
        raise NotARun(f"{run} has no fold*/log.csv; is it a run folder of python -m train?")
    seconds = 0.0
    for log in logs:
        try:
            with log.open(newline="") as f:
                seconds += sum(float(row["seconds"]) for row in csv.DictReader(f))
        except (ValueError, KeyError, TypeError) as e:  # a row without a number in its seconds column
            raise NotARun(f"{run} is not a finished training run ({log}: {e!r}); {HOW}") from e
        except OSError as e:
            raise NotARun(f"{run} is not a finished training run ({e}); {HOW}") from e
    per_class = metrics.get("per_class")
    if not isinstance(per_class, list) or not all(isinstance(r, dict) and "name" in r for r in per_class):
        raise NotARun(f"{run}/metrics.json has no per-class report (per_class); {HOW}")
    class_ap = {r["name"]: r.get("ap") for r in per_class}
    return {"metrics": {k: metrics.get(k) for k in TARGETS["scratch"]}, "class_ap": class_ap,
            "pretrained": config.get("pretrained", "none"), "training_minutes": seconds / 60.0,
            "epochs": config.get("epochs"), "folds": len(logs)}


def verdicts(result: dict, demo_minutes: float | None) -> list[dict]:
    start = "scratch" if result["pretrained"] == "none" else "pretrained"
    rows = [{"target": f"{k} >= {v}", "measured": result["metrics"][k],
             "met": result["metrics"][k] is not None and result["metrics"][k] >= v}
            for k, v in TARGETS[start].items()]
    least = CLASS_AP[start]
    if least is not None:
        # classes with no positives in the held-out test have no AP (None) and are left out
        aps = {name: ap for name, ap in result["class_ap"].items() if ap is not None}
        below = sorted((name for name, ap in aps.items() if ap < least), key=aps.get)
        rows.append({"target": f"every class AP >= {least:g}", "measured": min(aps.values()) if aps else None,
                     "met": bool(aps) and not below,
                     **({"below": {name: round(aps[name], 4) for name in below}} if below else {})})
    rows.append({"target": f"training <= {TRAINING_MINUTES:g} min", "measured": round(result["training_minutes"], 2),
                 "met": result["training_minutes"] <= TRAINING_MINUTES})
    if demo_minutes is not None:
        rows.append({"target": f"make demo <= {DEMO_MINUTES:g} min", "measured": demo_minutes,
                     "met": demo_minutes <= DEMO_MINUTES})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished run folder (default runs/demo)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--demo-minutes", type=float, help="wall time of the whole make demo, to check it too")
    when.add_argument("--demo-started", type=float, metavar="UNIX_TIME",
                      help="when make demo started (date +%%s): its wall time is now minus this")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_targets.json"), help="JSON results file")
    args = p.parse_args(argv)
    if args.demo_started is not None:
        args.demo_minutes = round((time.time() - args.demo_started) / 60.0, 2)
    try:
        result = read_run(args.run)
    except NotARun as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    rows = verdicts(result, args.demo_minutes)
    machine = describe()
    start = "from random init" if result["pretrained"] == "none" else f"from {result['pretrained']}"
    print(f"{args.run}: {result['epochs']} epochs {start}, {result['folds']} fold(s); {headline(machine)}")
    print(f"{'target':<26} {'measured':>10}  verdict")
    for row in rows:
        measured = "n/a" if row["measured"] is None else f"{row['measured']:.4g}"
        below = "".join(f"; {name} {ap:.3f}" for name, ap in row.get("below", {}).items())
        print(f"{row['target']:<26} {measured:>10}  {'met' if row['met'] else 'NOT MET'}{below}")
    code = save_results(args.out, {"run": str(args.run), **result, "targets": rows, "machine": machine})
    if code != exitcodes.OK:
        return code
    return exitcodes.OK if all(row["met"] for row in rows) else exitcodes.VERDICT


if __name__ == "__main__":
    sys.exit(main())
