"""Training runs side by side on the same held-out scenes: one row per finished `python -m train` run folder.

    python -m benchmarks.runs_table --runs runs/demo runs/lr2-5e-4 [...] [--out benchmarks/results/runs_table.json]

Reads what each run folder already holds (as benchmarks/demo_targets.py does): metrics.json (the held-out test of
the run's best.pt and its per-class report), config.json (the run's train_config and its data set), splits.json
(the held-out test indices) and each fold's log.csv (seconds per epoch: the training minutes, the held-out
evaluation not included). A row: the run (its folder name), the train_config fields in which the runs differ from
one another (only those, as field=value; a field a run's config.json lacks was written before the field existed and
counts at its default; weights=<sha256 prefix> where the pretrained weights' files differ), held-out top-T accuracy, macro mAP, SSIM, the three weakest classes with their AP, and the
training minutes.

The table compares only runs of the same data and split: runs whose splits.json "test" lists, splits.json
labels_sha256 or config.json "data" differ were not evaluated on the same held-out scenes, and the command refuses
them. Torch-free: it reads JSON and CSV only.
Exit codes: 0 the table was written, 2 fewer than two --runs, a folder that is not a finished run, or runs of
different data or split (no JSON is written then).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import save_results
from benchmarks.demo_targets import HOW, NotARun, read_run, run_json
from dualpath import exitcodes
from dualpath.machine import describe, headline

WEAKEST = 3  # classes named per row, lowest AP first
_ABSENT = object()  # a train_config field a run does not have


class NotComparable(ValueError):
    """The runs were not evaluated on the same held-out scenes."""


def read(run: Path) -> dict:
    """One run folder: read_run's metrics and minutes, with its train_config, data set and held-out indices."""
    result = read_run(run)
    config, splits = run_json(run, "config.json"), run_json(run, "splits.json")
    if not isinstance(splits.get("test"), list):
        raise NotARun(f"{run} is not a finished training run (splits.json has no test list); {HOW}")
    return {**result, "train_config": config["train_config"], "data": config.get("data"),
            "weights_sha256": (config.get("weights") or {}).get("sha256"),
            "test": splits["test"], "labels_sha256": splits.get("labels_sha256")}


def check_same_scenes(names: list[str], runs: list[dict]) -> None:
    """NotComparable naming every run whose held-out scenes differ from the first run's."""
    first = runs[0]
    differ = []
    for name, run in zip(names[1:], runs[1:]):
        what = [label for label, key in (("splits.json test list", "test"), ("config.json data", "data"),
                                         ("splits.json labels_sha256", "labels_sha256")) if run[key] != first[key]]
        if what:
            differ.append(f"{name} ({', '.join(what)})")
    if differ:
        raise NotComparable(f"{'; '.join(differ)} differ{'s' if len(differ) == 1 else ''} from {names[0]}: "
                            f"not evaluated on the same held-out scenes; the table compares only runs of the same "
                            f"data and split")


def with_defaults(configs: list[dict]) -> tuple[list[dict], list[list[str]]]:
    """Each train_config with the fields it lacks (written before they existed) at TrainConfig's defaults, and which
    fields were filled per run. Fields TrainConfig no longer has stay as they are."""
    from train.config import saved_defaults

    defaults = saved_defaults()
    present = set().union(*configs)
    filled, out = [], []
    for config in configs:
        missing = [k for k in defaults if k in present and k not in config]
        out.append({**config, **{k: defaults[k] for k in missing}})
        filled.append(missing)
    return out, filled


def differing_fields(configs: list[dict]) -> list[str]:
    """The train_config fields whose values are not the same in every run (absent counts as a value), in the order
    the configs list them."""
    order: list[str] = []
    for config in configs:
        order += [k for k in config if k not in order]
    return [k for k in order if any(c.get(k, _ABSENT) != configs[0].get(k, _ABSENT) for c in configs[1:])]



def fmt_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "absent" if value is _ABSENT else str(value)


def rows(paths: list[Path]) -> tuple[list[dict], list[str]]:
    """The table's rows and the differing fields; NotARun / NotComparable when they cannot be compared."""
    names = [p.resolve().name or str(p) for p in paths]
    runs = [read(p) for p in paths]
    check_same_scenes(names, runs)
    configs, filled = with_defaults([r["train_config"] for r in runs])
    fields = differing_fields(configs)
    # the same --pretrained path can hold other weights (a new shipped backbone): their sha256 tells runs apart
    shas = [r["weights_sha256"] for r in runs]
    weights = len(set(shas)) > 1
    out = []
    for name, path, run, config, defaulted in zip(names, paths, runs, configs, filled):
        aps = {c: ap for c, ap in run["class_ap"].items() if ap is not None}
        weakest = sorted(aps, key=aps.get)[:WEAKEST]
        out.append({"name": name, "path": str(path),
                    "differs": {k: (None if config.get(k, _ABSENT) is _ABSENT else config[k]) for k in fields}
                    | ({"weights": (run["weights_sha256"] or "none")[:8]} if weights else {}),
                    **run["metrics"], "weakest": [{"name": c, "ap": aps[c]} for c in weakest],
                    "training_minutes": run["training_minutes"], "epochs": run["epochs"],
                    "folds": run["folds"], "pretrained": run["pretrained"], "train_config": config,
                    "defaulted_fields": defaulted})
    return out, fields + (["weights"] if weights else [])


def table(result: list[dict], fields: list[str]) -> list[str]:
    def metric(v) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    header = ["run", "differs", "top-T acc", "macro mAP", "SSIM", f"weakest {WEAKEST} classes (AP)", "train min"]
    body = [[r["name"], " ".join(f"{k}={fmt_value(r['differs'][k])}" for k in fields) or "-",
             metric(r["accuracy"]), metric(r["macro_map"]), metric(r["ssim"]),
             ", ".join(f"{w['name']} {w['ap']:.3f}" for w in r["weakest"]) or "n/a",
             f"{r['training_minutes']:.1f}"] for r in result]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    right = {2, 3, 4, 6}
    return ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
            .rstrip() for row in [header, *body]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="two or more finished run folders")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/runs_table.json"), help="JSON results file")
    args = p.parse_args(argv)
    if len(args.runs) < 2:
        print(f"error: --runs needs at least two run folders to compare, got {len(args.runs)}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    machine = describe()
    print(headline(machine))
    try:
        result, fields = rows(args.runs)
    except (NotARun, NotComparable) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    for line in table(result, fields):
        print(line)
    return save_results(args.out, {"runs": result, "differing_fields": fields, "machine": machine})


if __name__ == "__main__":
    sys.exit(main())
