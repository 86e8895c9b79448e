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

A second table asks whether the data carry what separates such a pair: on the default scenes holding exactly one of
the two classes, the ROC AUC of the model's output for the weak class against the AUC of one number read off the
scene, the visible length of that object in pixels (the extent of its visible mask along its principal axis; longer
or shorter as the classes' real lengths, dualpath.scenes.shapes.LENGTH_CM, say, never fitted to these scenes). A
length AUC well above the model's: the length is there at 64x64 and the model does not read it.
Exit codes: 0 the table was written, 2 a run folder or data set that cannot be read.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from benchmarks import measure_and_save
from dualpath import exitcodes

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


def render(config, seed: int, indices, scenes: list | None = None) -> tuple:
    """The noisy images and labels of scenes `indices` of (config, seed); the Scene objects are appended to
    `scenes` when it is given."""
    import numpy as np

    from dualpath.scenes.compose import render_scene

    rendered = [render_scene(config, seed, int(i)) for i in indices]
    if scenes is not None:
        scenes.extend(rendered)
    return np.stack([s.noisy for s in rendered]), np.stack([s.labels for s in rendered])


def visible_length(mask) -> float:
    """Extent in pixels of a mask's pixels along their principal axis (nan for fewer than 3 pixels)."""
    import numpy as np

    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return float("nan")
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    pts -= pts.mean(axis=0)
    axis = np.linalg.eigh(np.cov(pts.T))[1][:, -1]
    proj = pts @ axis
    return float(proj.max() - proj.min() + 1.0)


def pair_report(scenes, probs, names, weak: str, confuser: str) -> dict | None:
    """The scenes holding exactly one of `weak` and `confuser`: ROC AUC of the model's `weak` output, and of the
    visible length of that object signed by the two classes' real lengths (LENGTH_CM). None when a class is absent."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from dualpath.scenes.shapes import LENGTH_CM

    w, c = names.index(weak), names.index(confuser)
    rows, lengths, truth = [], [], []
    for i, s in enumerate(scenes):
        has_w, has_c = w in s.classes, c in s.classes
        if has_w == has_c:
            continue
        obj = s.classes.index(w if has_w else c)
        rows.append(i)
        lengths.append(visible_length(s.masks[obj]))
        truth.append(has_w)
    truth, lengths = np.asarray(truth), np.asarray(lengths)
    if truth.all() or not truth.any():
        return None
    shorter = np.mean(LENGTH_CM[weak]) < np.mean(LENGTH_CM[confuser])
    seen = ~np.isnan(lengths)
    return {"weak": weak, "confuser": confuser, "scenes": len(rows), "with_weak": int(truth.sum()),
            "model_auc": float(roc_auc_score(truth, probs[rows, w])),
            "length_auc": float(roc_auc_score(truth[seen], -lengths[seen] if shorter else lengths[seen])),
            "weak_length_px": float(np.nanmedian(lengths[truth])),
            "confuser_length_px": float(np.nanmedian(lengths[~truth])),
            "real_length_cm": {weak: list(LENGTH_CM[weak]), confuser: list(LENGTH_CM[confuser])}}


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


def measure(run: Path, n: int | None, threads: int, weak: float = 0.75, progress=print) -> dict:
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
    rows, scenes, pairs = {}, [], []
    for name, changes in VARIANTS.items():
        t0 = time.perf_counter()
        images, labels = render(scene_config(base, changes), seed, indices, scenes if name == "default" else None)
        probs = probabilities(model, images)
        report = class_report(probs, labels, CLASS_NAMES)
        aps = [r["ap"] for r in report.values() if r["ap"] is not None]
        rows[name] = {"changes": changes, "macro_map": float(np.mean(aps)), "classes": report}
        progress(f"  {name}: macro mAP {rows[name]['macro_map']:.4f} ({time.perf_counter() - t0:.0f} s)")
        if name == "default":
            for c, r in report.items():
                if r["ap"] is not None and r["ap"] < weak and r["confuser"]:
                    pair = pair_report(scenes, probs, list(CLASS_NAMES), c, r["confuser"])
                    pairs += [pair] if pair else []
    return {"run": str(run), "scenes": len(indices), "seed": seed, "rows": rows, "length_cue": pairs}


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
    if result.get("length_cue"):
        lines += ["", "default scenes holding one of the pair: ROC AUC of the model's output and of the visible length",
                  f"{'class':<15}{'confuser':<15}{'scenes':>8}{'model AUC':>11}{'length AUC':>12}{'median length px':>20}"]
        for p in sorted(result["length_cue"], key=lambda p: p["model_auc"] - p["length_auc"]):
            lines.append(f"{p['weak']:<15}{p['confuser']:<15}{p['scenes']:>8}{p['model_auc']:>11.3f}"
                         f"{p['length_auc']:>12.3f}{p['weak_length_px']:>11.1f} / {p['confuser_length_px']:.1f}")
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
    return measure_and_save(args.out, f"{args.run}: held-out scenes re-rendered {len(VARIANTS)} ways",
                            lambda: measure(args.run, args.n, args.threads, args.weak),
                            lambda result: print_table(result, args.weak), (ValueError, OSError, KeyError))


if __name__ == "__main__":
    sys.exit(main())
