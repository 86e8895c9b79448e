"""Are the label flips the drift gate counts real damage or near-ties? An export's FP32 references and INT8 / FP16
candidates on the drift gate's own scenes, each flip set beside how close the reference's own decision was.

    python -m benchmarks.flip_margins --export runs/demo/export [--n 1000] [--out benchmarks/results/flip_margins.json]

The gate (export.gate_step, runtime.drift) counts a label flip when a scene's top-T label set (T = its number of true
labels, dualpath.metrics.top_t) differs between the FP32 reference and the candidate. Here, on the same scenes (the
held-out drift set: seed dualpath.seeds.DRIFT_SEED, severity 1, the first --n, cached under --data-root), per candidate
of the export's manifest (its "drift" section names each one's reference):
  flips           the share of scenes whose top-T set changed (the gate's label_flip_rate);
  margin          the reference's decision margin on a scene: its T-th highest probability minus its (T+1)-th; the
                  median, 90% quantile and maximum over the flipped scenes (a flip at a margin of 0.01 is a near-tie
                  that any small change of input could tip);
  r->w, w->r      flipped scenes whose top-T set was right (equal to the true labels) in the reference and wrong in
                  the candidate, and the reverse: real damage is r->w well above w->r;
  mean |dp|       the mean absolute difference of the probabilities.
And the FP32 reference's own noise floor: the same model on the same scenes with every uint8 pixel moved by a random
integer in [-k, k] (k = 1, 2; numpy default_rng(0), clipped to 0..255), against its clean-input run. A candidate whose
flips are no more than a +-1 grey level's, at the same margins, flips near-ties, not labels the model was sure of.
Exit codes: 0 the table was written, 2 a folder that is not an export (no manifest.json, no drift section), a bad --n,
or a model or data set that cannot be read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks import measure_and_save
from dualpath import exitcodes

NOISE_LEVELS = (1, 2)  # grey levels of the FP32 noise floor
NEAR_TIES = (0.01, 0.02)  # margins below which a reference's decision counts as a near-tie


class NotAnExport(ValueError):
    """The folder is not an export with drift reports."""


def margins(labels, probs):
    """Per scene the decision margin of `probs` at T = its number of true labels: the T-th highest probability minus
    the (T+1)-th. NaN where T is 0 or every class (no decision between a chosen and an unchosen label)."""
    import numpy as np

    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    t = (labels > 0).sum(axis=1)
    ranked = -np.sort(-probs, axis=1)  # descending
    out = np.full(len(probs), np.nan)
    ok = (t > 0) & (t < probs.shape[1])
    rows = np.flatnonzero(ok)
    out[rows] = ranked[rows, t[rows] - 1] - ranked[rows, t[rows]]
    return out


def _quantiles(values) -> dict:
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return {"median": None, "p90": None, "max": None}
    return {"median": float(np.median(values)), "p90": float(np.quantile(values, 0.9)), "max": float(values.max())}


def flip_stats(labels, ref_probs, cand_probs, ref_margins=None) -> dict:
    """How `cand_probs` differs from `ref_probs` on scenes with these labels: the gate's flip rate, the reference's
    margins on the flipped scenes, right->wrong / wrong->right counts and the mean |delta p|."""
    import numpy as np

    from dualpath.metrics import top_t

    labels = np.asarray(labels)
    ref_probs, cand_probs = np.asarray(ref_probs), np.asarray(cand_probs)
    m = margins(labels, ref_probs) if ref_margins is None else np.asarray(ref_margins)
    ref_top, cand_top = top_t(labels, ref_probs), top_t(labels, cand_probs)
    flipped = (ref_top != cand_top).any(axis=1)  # as runtime.drift.compare.output_drift counts them
    truth = (labels > 0).astype(np.uint8)
    ref_right, cand_right = (ref_top == truth).all(axis=1), (cand_top == truth).all(axis=1)
    flip_margins = m[flipped]
    return {
        "n": int(len(labels)),
        "flips": int(flipped.sum()),
        "label_flip_rate": float(flipped.mean()) if len(labels) else 0.0,
        "flip_margin": _quantiles(flip_margins),
        **{f"flips_margin_below_{x:g}": int(np.sum(flip_margins < x)) for x in NEAR_TIES},
        "right_to_wrong": int(np.sum(ref_right & ~cand_right)),
        "wrong_to_right": int(np.sum(~ref_right & cand_right)),
        "accuracy_reference": float(ref_right.mean()) if len(labels) else 0.0,
        "accuracy_candidate": float(cand_right.mean()) if len(labels) else 0.0,
        "mean_abs_delta_p": float(np.abs(ref_probs.astype(np.float64) - cand_probs).mean()),
    }


def jitter(images, k: int, seed: int = 0):
    """uint8 images with every value moved by a random integer in [-k, k] (numpy default_rng(seed)), clipped."""
    import numpy as np

    # numpy's default int64 draws: another dtype (int16) draws another stream, and other flips (0.041 for 0.033 at k=2)
    noise = np.random.default_rng(seed).integers(-k, k + 1, size=images.shape)
    return np.clip(images.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def noise_floor(backend, images, labels, clean_probs, k: int, seed: int = 0, ref_margins=None) -> dict:
    """flip_stats of `backend` on `images` moved by +-k grey levels against its run on the images themselves."""
    from dualpath import contract
    from runtime.drift.compare import run_backend

    noisy = run_backend(backend, jitter(images, k, seed))[contract.OUTPUT_PROBS]
    return {"k": k, **flip_stats(labels, clean_probs, noisy, ref_margins)}


def read_pairs(folder: Path) -> dict[str, str]:
    """The export's candidates -> their FP32 references, as its manifest's drift section names them."""
    from export.benchmark import read_manifest

    if not folder.is_dir():
        raise NotAnExport(f"{folder} is not a folder; --export takes an export folder (python -m export --out DIR)")
    try:
        manifest = read_manifest(folder)
    except ValueError as e:
        raise NotAnExport(str(e)) from None
    drift = manifest.get("drift") if isinstance(manifest, dict) else None
    if not isinstance(drift, dict) or not drift:
        raise NotAnExport(f"{folder}/manifest.json has no drift reports; export with --int8 or --fp16 first")
    pairs = {}
    for name, entry in drift.items():
        ref = entry.get("reference") if isinstance(entry, dict) else None
        if not isinstance(ref, str) or not ref:
            raise NotAnExport(f"{folder}/manifest.json: the drift report of {name} names no reference; export again")
        pairs[name] = ref
    return pairs


def _load(folder: Path, name: str, threads: int):
    from runtime.backends import load_backend

    return load_backend(folder / name, **({} if name.endswith(".engine") else {"threads": threads}))


def measure(folder: Path, n: int, data_root: Path, workers: int, threads: int, progress=print) -> dict:
    import time

    import numpy as np

    from dualpath import contract
    from runtime.backends import BackendError
    from runtime.drift.compare import run_backend
    from runtime.drift.sets import DRIFT_SEED, drift_dataset

    pairs = read_pairs(folder)
    ds = drift_dataset(data_root, n, 1.0, DRIFT_SEED, workers)
    images, labels = ds.noisy, ds.labels
    references: dict[str, dict] = {}
    ref_probs: dict[str, np.ndarray] = {}
    ref_margins: dict[str, np.ndarray] = {}
    for ref_name in dict.fromkeys(pairs.values()):
        t0 = time.perf_counter()
        with _load(folder, ref_name, threads) as backend:
            probs = run_backend(backend, images)[contract.OUTPUT_PROBS]
            m = margins(labels, probs)
            floor = [noise_floor(backend, images, labels, probs, k, 0, m) for k in NOISE_LEVELS]
        ref_probs[ref_name], ref_margins[ref_name] = probs, m
        references[ref_name] = {
            "margin": _quantiles(m),
            **{f"share_margin_below_{x:g}": float(np.mean(m < x)) for x in NEAR_TIES},  # NaN compares False
            "noise_floor": floor,
        }
        progress(f"  {ref_name}: clean and +-{'/'.join(map(str, NOISE_LEVELS))} grey ({time.perf_counter() - t0:.0f} s)")
    candidates = {}
    for cand_name, ref_name in pairs.items():
        t0 = time.perf_counter()
        try:
            with _load(folder, cand_name, threads) as backend:
                probs = run_backend(backend, images)[contract.OUTPUT_PROBS]
        except BackendError as e:  # e.g. a TensorRT engine on a machine without TensorRT: a row that says so
            candidates[cand_name] = {"reference": ref_name, "skipped": str(e)}
            progress(f"  {cand_name}: skipped ({e})")
            continue
        candidates[cand_name] = {"reference": ref_name,
                                 **flip_stats(labels, ref_probs[ref_name], probs, ref_margins[ref_name])}
        progress(f"  {cand_name}: {time.perf_counter() - t0:.0f} s")
    return {"export": str(folder), "scenes": int(len(labels)), "seed": DRIFT_SEED, "severity": 1.0,
            "data": str(ds.path), "references": references,
            "candidates": candidates}


def table(result: dict) -> list[str]:
    def cell(v, fmt):
        return f"{'n/a':>{fmt[0]}}" if v is None else f"{v:>{fmt}}"

    head = (f"{'model':<26}{'reference':<22}{'flips':>7}{'rate':>8}{'margin med':>12}{'p90':>8}{'max':>8}"
            f"{'<0.02':>7}{'r->w':>6}{'w->r':>6}{'mean |dp|':>11}")
    lines = [head]

    def row(label, ref, s):
        q = s["flip_margin"]
        return (f"{label:<26}{ref:<22}{s['flips']:>7}{s['label_flip_rate']:>8.3f}{cell(q['median'], '12.4f')}"
                f"{cell(q['p90'], '8.4f')}{cell(q['max'], '8.4f')}{s['flips_margin_below_0.02']:>7}"
                f"{s['right_to_wrong']:>6}{s['wrong_to_right']:>6}{s['mean_abs_delta_p']:>11.5f}")

    for name, s in result["candidates"].items():
        lines.append(f"{name:<26}{s['reference']:<22}  skipped: {s['skipped']}" if "skipped" in s
                     else row(name, s["reference"], s))
    for ref, r in result["references"].items():
        for s in r["noise_floor"]:
            lines.append(row(f"{ref} +-{s['k']} grey", ref + " clean", s))
    lines.append("")
    for ref, r in result["references"].items():
        q = r["margin"]
        lines.append(f"{ref}: margin on all scenes median {q['median']:.4f}; "
                     + ", ".join(f"{r[f'share_margin_below_{x:g}']:.1%} below {x:g}" for x in NEAR_TIES))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--export", type=Path, default=Path("runs/demo/export"),
                   help="an export folder with drift reports (default runs/demo/export)")
    p.add_argument("--n", type=int, default=1000, help="drift scenes (default 1000, the gate's)")
    p.add_argument("--data-root", type=Path, default=Path("data"), help="where the drift scenes are cached (default data)")
    p.add_argument("--workers", type=int, default=1, help="processes generating scenes not yet cached (default 1)")
    p.add_argument("--threads", type=int, default=1, help="inference threads per backend (default 1)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/flip_margins.json"), help="JSON results file")
    args = p.parse_args(argv)
    for name in ("n", "workers", "threads"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1, got {getattr(args, name)}", file=sys.stderr)
            return exitcodes.BAD_INPUT
    from runtime.backends import BackendError

    try:
        read_pairs(args.export)  # a folder that is not an export says so before any scene is generated
    except NotAnExport as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return measure_and_save(
        args.out, f"{args.export}: label flips against the reference's margins, {args.n} drift scenes",
        lambda: measure(args.export, args.n, args.data_root, args.workers, args.threads), table,
        (ValueError, OSError, BackendError))


if __name__ == "__main__":
    sys.exit(main())
