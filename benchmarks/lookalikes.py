"""Where do the look-alikes' errors come from: the generator's scale at 64x64, the degradation, or the model's
features? One trained model, the same held-out scenes re-rendered four ways, per-class AP side by side.

    python -m benchmarks.lookalikes --run runs/demo [--n 1199] [--out benchmarks/results/lookalikes.json]

The rows re-render the run's own held-out test scenes (the indices in its splits.json, of its data set's seed and
scene config), changing one thing at a time:
  default           the scenes as generated (the row reproduces the run's own held-out figures);
  no scale jitter   every object at its real size (scale_jitter 1-1): what a size cue alone could add;
  clean             severity 0 (no low light, blur, noise or JPEG): what the degradation takes;
  clean, no jitter  both.
A class whose AP stays low in the last row is not lost to the data's ambiguity or to the degradation: the model's
features do not separate it. For each class below --weak AP, the table names its confuser: the class whose scenes
(without the weak class) score highest on the weak class's output, and that mean score.
Exit codes: 0 the table was written, 2 a run folder or data set that cannot be read.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from benchmarks import save_results
from dualpath import exitcodes
from dualpath.machine import describe, headline

VARIANTS = {  # name -> SceneConfig fields changed (degrade: DegradeConfig fields)
    "default": {},
    "no scale jitter": {"scale_jitter": (1.0, 1.0)},
    "clean": {"degrade": {"severity": 0.0}},
    "clean, no jitter": {"scale_jitter": (1.0, 1.0), "degrade": {"severity": 0.0}},
}


def scene_config(base, changes: dict):
    """`base` (a SceneConfig) with `changes` applied (a "degrade" entry changes DegradeConfig fields)."""
    degrade = dataclasses.replace(base.degrade, **changes.get("degrade", {}))
    return dataclasses.replace(base, degrade=degrade, **{k: v for k, v in changes.items() if k != "degrade"})


def render(config, seed: int, indices) -> tuple:
    """The noisy images and labels of scenes `indices` of (config, seed)."""
    import numpy as np

    from dualpath.scenes.compose import render_scene

    scenes = [render_scene(config, seed, int(i)) for i in indices]
    return np.stack([s.noisy for s in scenes]), np.stack([s.labels for s in scenes])


def probabilities(model, images, batch: int = 200):
    import numpy as np
    import torch

    from train.data import Normalizer

    norm = Normalizer(torch.device("cpu"), channels_last=False)
    x = torch.from_numpy(images)
    with torch.no_grad():
        return np.concatenate([torch.sigmoid(model(norm.inputs(x[i:i + batch])).logits.float()).numpy()
                               for i in range(0, len(x), batch)])


def class_report(probs, labels, names) -> dict:
    """Per class: AP and its confuser (the other class whose scenes without this one score highest on it)."""
    from sklearn.metrics import average_precision_score

    out = {}
    for k, name in enumerate(names):
        pos = labels[:, k] == 1
        ap = float(average_precision_score(pos, probs[:, k])) if pos.any() else None
        scores = {names[j]: float(probs[(labels[:, j] == 1) & ~pos, k].mean())
                  for j in range(len(names)) if j != k and ((labels[:, j] == 1) & ~pos).any()}
        worst = max(scores, key=scores.get) if scores else None
        out[name] = {"ap": ap, "confuser": worst, "confuser_score": scores.get(worst),
                     "positive_score": float(probs[pos, k].mean()) if pos.any() else None}
    return out


def measure(run: Path, n: int | None, threads: int, progress=print) -> dict:
    import numpy as np
    import torch

    from dualpath.contract import CLASS_NAMES
    from dualpath.files import read_json
    from dualpath.scenes import SceneConfig
    from train.checkpoint import load_model

    torch.set_num_threads(threads)
    splits = read_json(run / "splits.json", ValueError, f"{run} has no splits.json: is it a finished training run?",
                       f"{run}/splits.json: {{error}}", expect=dict)
    data = read_json(run / "config.json", ValueError, f"{run} has no config.json: is it a finished training run?",
                     f"{run}/config.json: {{error}}", expect=dict).get("data") or {}
    manifest = Path(data.get("path", "")) / "manifest.json"
    base = (SceneConfig.from_dict(read_json(manifest, ValueError, "", f"{manifest}: {{error}}", expect=dict)["config"])
            if manifest.is_file() else SceneConfig())
    seed, indices = int(splits["seed"]), np.asarray(splits["test"][:n] if n else splits["test"])
    model, _ = load_model(run / "best.pt")
    rows = {}
    for name, changes in VARIANTS.items():
        t0 = time.perf_counter()
        images, labels = render(scene_config(base, changes), seed, indices)
        report = class_report(probabilities(model, images), labels, CLASS_NAMES)
        aps = [r["ap"] for r in report.values() if r["ap"] is not None]
        rows[name] = {"changes": changes, "macro_map": float(np.mean(aps)), "classes": report}
        progress(f"  {name}: macro mAP {rows[name]['macro_map']:.4f} ({time.perf_counter() - t0:.0f} s)")
    return {"run": str(run), "scenes": len(indices), "seed": seed, "rows": rows}


def print_table(result: dict, weak: float) -> list[str]:
    rows = result["rows"]
    names = list(rows)
    lines = [f"{'class':<15}" + "".join(f"{n:>18}" for n in names) + "   confuser (default scenes)",
             f"{'macro mAP':<15}" + "".join(f"{rows[n]['macro_map']:>18.4f}" for n in names)]
    default = rows["default"]["classes"]
    order = sorted(default, key=lambda c: default[c]["ap"] if default[c]["ap"] is not None else 2.0)
    for c in order:
        aps = [rows[n]["classes"][c]["ap"] for n in names]
        cells = "".join(f"{'n/a' if a is None else f'{a:.3f}':>18}" for a in aps)
        d = default[c]
        note = (f"   {d['confuser']} (mean score {d['confuser_score']:.2f} vs {d['positive_score']:.2f} on its own)"
                if d["ap"] is not None and d["ap"] < weak and d["confuser"] else "")
        lines.append(f"{c:<15}{cells}{note}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished run folder (default runs/demo)")
    p.add_argument("--n", type=int, help="only the first N held-out scenes (default: all of them)")
    p.add_argument("--weak", type=float, default=0.75, help="classes below this AP get their confuser named")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/lookalikes.json"), help="JSON results file")
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        print("error: --n must be at least 1", file=sys.stderr)
        return exitcodes.BAD_INPUT
    machine = describe()
    print(f"{args.run}: held-out scenes re-rendered {len(VARIANTS)} ways; {headline(machine)}")
    try:
        result = measure(args.run, args.n, args.threads)
    except (ValueError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    for line in print_table(result, args.weak):
        print(line)
    return save_results(args.out, {**result, "machine": machine})


if __name__ == "__main__":
    sys.exit(main())
