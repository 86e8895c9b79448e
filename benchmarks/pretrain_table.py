"""Scene-pretraining runs side by side: each run's classifier (its pretrain.pt) scored on the same held-out scenes,
with the look-alikes' AP and what the run cost.

    python -m benchmarks.pretrain_table --run weights/densenet_small --run runs/pretrain-3x3 [--run ...]
        [--n 1000] [--out benchmarks/results/pretrain_table.json]
    python -m benchmarks.pretrain_table --run weights/densenet_small --held-out-of runs/demo \
        --out benchmarks/results/backbone_vs_demo.json

Every run is scored here, on the pretraining stream's held-out chunk (chunk 0: seed 10000000, never trained on), so
runs made before the card named each class's AP are compared on the same terms; the macro mAP must reproduce the
card's own figure (within 0.002: the card's evaluation ran under the run's autocast, bf16 where the CPU has it; the
table's is fp32), which the table checks. Cost columns come from the card: training scenes per second of wall clock
(train only, the held-out evaluation excluded) on the machine the card names, and the scenes seen in total (a warm
start's, --init, included). A run whose stem or init differs is a different recipe: read the stem column.

--held-out-of RUN scores them instead on the held-out test scenes of a finished `python -m train` run (its data
folder and splits.json, the label matrix checked against the split's digest), and puts that run's own model (its
metrics.json) in the table's last row: the DenseNet alone, as pretrained, beside the model trained from it on the
same scenes. Clean-scene figures are then the data set's clean targets.

A `--model dualpath` run (model.json) is scored as a whole model: its classification of the noisy scenes and the SSIM
of its reconstructions against the clean ones (no clean-input column: the model's input is the degraded scene).
Exit codes: 0 the table was written, 2 a run folder that cannot be read.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks import save_results
from dualpath import exitcodes
from dualpath.machine import describe, headline

LOOKALIKES = ("teaspoon", "dessert spoon", "dinner fork", "dinner knife", "whisk")


def read_run(folder: Path) -> tuple[dict, dict]:
    """(card, pretrain.pt) of a `python -m train pretrain` run folder, or ValueError saying what is wrong."""
    import torch

    ckpt_path = folder / "pretrain.pt"
    card_path = next((folder / n for n in ("model.json", "backbone.json") if (folder / n).is_file()),
                     folder / "backbone.json")
    for path in (card_path, ckpt_path):
        if not path.is_file():
            raise ValueError(f"{folder} has no {path.name}: pass the --out folder of a finished "
                             "`python -m train pretrain` run")
    try:
        card = json.loads(card_path.read_text())
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file
        raise ValueError(f"cannot read the run {folder} ({err})") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("pretrain_config"), dict) or "model" not in ckpt:
        raise ValueError(f"{ckpt_path} is not a pretraining checkpoint")
    return card, ckpt


def score(ckpt: dict, arrays: dict) -> dict:
    """The held-out metrics of the checkpoint's model (a classifier, or a whole dual-path model with its SSIM), as the
    pretraining's own evaluation computes them."""
    import torch

    from train.pretrain_run import model_kind
    from train.pretrain_stream import PretrainConfig

    cfg = ckpt["pretrain_config"]
    kind = model_kind(cfg.get("model", "classifier"))
    model, _ = kind.build(PretrainConfig(backbone=cfg["backbone"], stem=cfg["stem"], scenes=1))
    model.load_state_dict(ckpt["model"])

    class Runtime:  # what evaluate reads: CPU, fp32, no channels_last
        device, amp, channels_last = torch.device("cpu"), False, False

    return kind.evaluate(model, arrays, Runtime())


def run_held_out(run: Path) -> tuple[dict, dict]:
    """(arrays, the run's own held-out metrics) of a finished training run: its data set's test scenes, or ValueError
    saying what is missing or mismatched."""
    import numpy as np

    from train.splits import Splits

    try:
        config = json.loads((run / "config.json").read_text())
        splits = Splits.from_dict(json.loads((run / "splits.json").read_text()))
        metrics = json.loads((run / "metrics.json").read_text())
        data = Path(config["data"]["path"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{run} is not a finished `python -m train` run ({err}): pass the --out folder of one") from err
    try:
        labels = np.load(data / "labels.npy")
        splits.check_matches(labels)
        arrays = {k: np.load(data / f"{k}.npy", mmap_mode="r")[splits.test] for k in ("noisy", "clean")}
    except (OSError, ValueError) as err:
        raise ValueError(f"the data set {data} of {run} cannot be read as the run saw it ({err}); regenerate it "
                         f"with the run's own command (config.json: data)") from err
    arrays["labels"] = labels[splits.test]
    return arrays, metrics


def row(folder: Path, card: dict, ckpt: dict, metrics: dict) -> dict:
    init = card.get("init") or {}
    seen = card["scenes_seen"] + (init.get("scenes_seen") or 0)
    noisy, clean = metrics["noisy"], metrics.get("clean")  # a dual-path model is scored on noisy inputs only
    return {
        "run": str(folder), "model": ckpt["pretrain_config"].get("model", "classifier"),
        "stem": card.get("stem", "imagenet"), "backbone": card["backbone"],
        "init": init.get("from"), "scenes_seen": card["scenes_seen"], "scenes_seen_total": seen,
        "train_minutes": round(card["wall_s"] / 60, 1),
        "scenes_per_s": round(card["scenes_seen"] / card["wall_s"], 1) if card.get("wall_s") else None,
        "machine": card.get("machine", {}).get("isa"), "lr": card.get("training", {}).get("lr"),
        "noisy_map": noisy["macro_map"], "clean_map": clean["macro_map"] if clean else None,
        "noisy_accuracy": noisy["accuracy"], "ssim": noisy.get("ssim"),
        "card_noisy_map": card["held_out"]["noisy"]["macro_map"],
        "lookalikes": {c: noisy["per_class_ap"][c] for c in LOOKALIKES},
        "per_class_ap": noisy["per_class_ap"],
    }


def trained_row(run: Path, metrics: dict) -> dict:
    """The --held-out-of run's own model as a table row (its metrics.json, computed on the same scenes)."""
    ap = {r["name"]: r.get("ap") for r in metrics.get("per_class", [])}
    return {"run": f"{run} (its own {metrics.get('arch', 'model')} model)", "noisy_map": metrics["macro_map"],
            "noisy_accuracy": metrics["accuracy"], "ssim": metrics.get("ssim"),
            "lookalikes": {c: ap.get(c) for c in LOOKALIKES},
            "per_class_ap": ap}


def table(rows: list[dict]) -> str:
    head = ("| run | model | stem | scenes (total) | train min | scenes/s | noisy mAP | noisy accuracy | clean mAP | "
            "SSIM | " + " | ".join(LOOKALIKES) + " |")
    lines = [head, "|" + "---|" * (10 + len(LOOKALIKES))]
    for r in rows:
        aps = " | ".join(f"{r['lookalikes'][c]:.3f}" for c in LOOKALIKES)
        if "stem" not in r:  # a trained run's own model
            lines.append(f"| {r['run']} | | | | | | {r['noisy_map']:.4f} | {r['noisy_accuracy']:.4f} | | "
                         f"{_num(r.get('ssim'))} | {aps} |")
            continue
        lines.append(f"| {r['run']} | {r['model']} | {r['stem']} | {r['scenes_seen']} ({r['scenes_seen_total']}) | "
                     f"{r['train_minutes']} | {r['scenes_per_s']} | {r['noisy_map']:.4f} | {r['noisy_accuracy']:.4f} | "
                     f"{_num(r['clean_map'])} | {_num(r['ssim'])} | {aps} |")
    return "\n".join(lines)


def _num(value) -> str:
    return "" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_table", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, action="append", required=True,
                        help="a `python -m train pretrain` --out folder (backbone.json or model.json + pretrain.pt); "
                             "repeat")
    parser.add_argument("--n", type=int, default=1000, help="held-out scenes of chunk 0 (default 1000, the card's)")
    parser.add_argument("--held-out-of", type=Path, metavar="RUN",
                        help="score on the held-out test scenes of this `python -m train` run instead (e.g. runs/demo), "
                             "its own model in the last row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pretrain_table.json"))
    args = parser.parse_args(argv)
    if args.n < 1:
        print(f"error: --n must be >= 1, got {args.n}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        runs = [(folder, *read_run(folder)) for folder in args.run]
        trained = run_held_out(args.held_out_of) if args.held_out_of else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return exitcodes.BAD_INPUT

    import torch

    from train.pretrain_scenes import render_images
    from train.pretrain_stream import chunk_seed

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if trained:
        arrays = trained[0]
        held_out = {"run": str(args.held_out_of), "scenes": len(arrays["labels"])}
        print(f"held-out: the {held_out['scenes']} test scenes of {args.held_out_of}; {headline(describe())}",
              flush=True)
    else:
        arrays = render_images(chunk_seed(0), 0, args.n)
        held_out = {"seed": chunk_seed(0), "scenes": args.n}
        print(f"held-out: {args.n} scenes of seed {chunk_seed(0)} rendered in {time.perf_counter() - t0:.0f} s; "
              f"{headline(describe())}", flush=True)
    rows = []
    for folder, card, ckpt in runs:
        rows.append(row(folder, card, ckpt, score(ckpt, arrays)))
        r = rows[-1]
        if not trained and args.n == card["held_out"].get("scenes") and abs(r["noisy_map"] - r["card_noisy_map"]) > 2e-3:
            print(f"warning: {folder}: noisy mAP {r['noisy_map']} here, {r['card_noisy_map']} in its card "
                  "(not its final weights?)", file=sys.stderr)
    if trained:
        rows.append(trained_row(args.held_out_of, trained[1]))
    print(table(rows))
    return save_results(args.out, {"held_out": held_out, "machine": describe(), "rows": rows})


if __name__ == "__main__":
    sys.exit(main())
