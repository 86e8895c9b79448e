"""Do a trained model's features keep what its global average pool throws away? Linear probes on its frozen features.

    python -m benchmarks.pooling_probe --run runs/demo [--out benchmarks/results/pooling_probe.json]

The paper's model pools each DenseNet's last feature map (2x2 at 64x64 with the ImageNet stem) to one vector (Eq. 2),
multiplies the two vectors (Eq. 7) and classifies. A teaspoon and a dessert spoon are nearly the same shape at two
sizes, and benchmarks.lookalikes measures that the scenes carry their length (ROC AUC ~0.97 from the visible length
alone) while the model does not read it. This asks where the length is lost: one logistic regression per class
(scikit-learn, standardised inputs, the same C for every row) on the run's frozen features of the data set's
non-test scenes, scored on its held-out test scenes:
  fused GAP (the model's)   GAP(f5) * GAP(f5c), what the model's head reads: the probe should land near the head
  fused, per cell           f5 * f5c at each of the 2x2 cells, flattened: the same product without the pool
  fused, GAP + max          the product's average and maximum over the cells
  block3 GAP, both paths    the third dense block's pooled features (4x4 before the pool), of both DenseNets
A row far above the first on the look-alikes: the features hold the length and the pool loses it. Rows near it:
the features themselves do not hold it. Exit codes: 0 the table was written, 2 a run or data set that cannot be read.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import measure_and_save
from benchmarks.lookalikes import probabilities
from dualpath import exitcodes

ROWS = ("fused GAP (the model's)", "fused, per cell", "fused, GAP + max", "block3 GAP, both paths")
WATCH = ("teaspoon", "dessert spoon", "dinner fork", "dinner knife", "whisk")


def features(model, images, batch: int = 200) -> dict:
    """Each row's feature matrix for `images` (uint8 N x 64 x 64 x 3), from the frozen model."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from train.data import Normalizer

    norm = Normalizer(torch.device("cpu"), channels_last=False)
    out = {name: [] for name in ROWS}
    x_all = torch.from_numpy(images)
    with torch.no_grad():
        for i in range(0, len(x_all), batch):
            x = norm.inputs(x_all[i:i + batch])
            skips, f5 = model.encoder(x)
            recon = model.reconstruction(model.decoder(f5, skips))
            skips_c, f5c = model.classifier_backbone(model.normalize(recon))
            cells = F.relu(f5) * F.relu(f5c)  # (N, D, h, w)
            out[ROWS[0]].append((F.relu(f5).mean((2, 3)) * F.relu(f5c).mean((2, 3))).numpy())
            out[ROWS[1]].append(cells.flatten(1).numpy())
            out[ROWS[2]].append(torch.cat([cells.mean((2, 3)), cells.amax((2, 3))], 1).numpy())
            out[ROWS[3]].append(torch.cat([F.relu(skips[-1]).mean((2, 3)), F.relu(skips_c[-1]).mean((2, 3))],
                                          1).numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def probe(train_x, train_y, test_x, test_y, names, c: float) -> dict:
    """One logistic regression per class; per-class AP and macro mAP on the test scenes."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    aps = {}
    for k, name in enumerate(names):
        clf = LogisticRegression(C=c, max_iter=2000).fit(a, train_y[:, k])
        aps[name] = float(average_precision_score(test_y[:, k], clf.decision_function(b)))
    return {"macro_map": float(np.mean(list(aps.values()))), "dims": int(train_x.shape[1]), "classes": aps}


def measure(run: Path, c: float, threads: int, progress=print) -> dict:
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score

    from dualpath.contract import CLASS_NAMES
    from dualpath.files import read_json
    from dualpath.scenes.dataset import DatasetError, load_dataset
    from train.checkpoint import load_model

    torch.set_num_threads(threads)
    splits = read_json(run / "splits.json", ValueError, f"{run} has no splits.json: is it a finished training run?",
                       f"{run}/splits.json: {{error}}", expect=dict)
    data = read_json(run / "config.json", ValueError, f"{run} has no config.json: is it a finished training run?",
                     f"{run}/config.json: {{error}}", expect=dict).get("data") or {}
    try:
        ds = load_dataset(Path(data.get("path", "")))
    except DatasetError as e:
        raise ValueError(f"{run}'s data set: {e}") from None
    model, _ = load_model(run / "best.pt")
    if not hasattr(model, "classifier_backbone"):
        raise ValueError(f"{run} holds a {type(model).__name__}, not the dual-path model this probe reads")
    test = np.asarray(splits["test"])
    rest = np.setdiff1d(np.arange(len(ds.labels)), test)
    t0 = time.perf_counter()
    images, labels = np.asarray(ds.noisy), np.asarray(ds.labels)
    feats = features(model, images)
    progress(f"  features of {len(images)} scenes ({time.perf_counter() - t0:.0f} s)")
    head = probabilities(model, images[test])  # the model's own head on the same test scenes, beside the probes
    head_aps = {n: float(average_precision_score(labels[test, k], head[:, k])) for k, n in enumerate(CLASS_NAMES)}
    rows = {"the model's own head": {"macro_map": float(np.mean(list(head_aps.values()))), "dims": None,
                                     "classes": head_aps}}
    for name in ROWS:
        t0 = time.perf_counter()
        rows[name] = probe(feats[name][rest], labels[rest], feats[name][test], labels[test], CLASS_NAMES, c)
        progress(f"  {name}: macro mAP {rows[name]['macro_map']:.4f} ({time.perf_counter() - t0:.0f} s)")
    return {"run": str(run), "train_scenes": len(rest), "test_scenes": len(test), "C": c, "rows": rows}


def print_table(result: dict) -> list[str]:
    rows = result["rows"]
    lines = [f"{'features':<26}{'dims':>6}{'macro mAP':>11}" + "".join(f"{w[:13]:>15}" for w in WATCH)]
    for name, r in rows.items():
        dims = "" if r["dims"] is None else str(r["dims"])
        lines.append(f"{name:<26}{dims:>6}{r['macro_map']:>11.4f}" + "".join(f"{r['classes'][w]:>15.3f}" for w in WATCH))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished dual-path run (default runs/demo)")
    p.add_argument("--c", type=float, default=0.05, help="inverse L2 strength of every probe (default 0.05)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/pooling_probe.json"), help="JSON results file")
    args = p.parse_args(argv)
    if args.c <= 0:
        print("error: --c must be positive", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return measure_and_save(args.out, f"{args.run}: linear probes on the frozen features",
                            lambda: measure(args.run, args.c, args.threads), print_table,
                            (ValueError, OSError, KeyError))


if __name__ == "__main__":
    sys.exit(main())
