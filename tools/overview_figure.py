"""The README's picture: what the model does, on held-out scenes it never saw.

    python -m tools.overview_figure --model runs/demo/export/model_fp32.onnx --out docs/images/overview.png

Each column is one drift scene (dualpath.seeds.DRIFT_SEED, never trained on): the degraded input, the model's
reconstruction, the clean target; under them the model's top-T labels (T = the number of true labels, as the
metrics count them): "+" right, "x" wrong, "-" a true label it missed. Runs any exported artifact through the runtime's
backends (no torch). Exit 2 with one line when the model cannot be loaded or the output cannot be written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from dualpath import contract, exitcodes
from dualpath.metrics import top_t
from dualpath.scenes import SceneConfig, render_scene
from dualpath.seeds import DRIFT_SEED


def predict(model: Path, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC scenes -> (probabilities (N, C), reconstructions uint8 NHWC) from an exported artifact."""
    from runtime.backends import load_backend
    from runtime.drift.compare import run_backend

    with load_backend(model) as backend:
        out = run_backend(backend, noisy)
    return out[contract.OUTPUT_PROBS], contract.recon_to_uint8(out[contract.OUTPUT_RECON])


def caption(truth: np.ndarray, chosen: np.ndarray) -> str:
    """One label a line: "+ name" said and right, "x name" said and wrong, "- name" missed."""
    names = [n.replace("_", " ") for n in contract.CLASS_NAMES]
    marks = [("+" if truth[i] else "x") for i in np.flatnonzero(chosen)]
    said = [f"{m} {names[i]}" for m, i in zip(marks, np.flatnonzero(chosen))]
    missed = [f"- {names[i]}" for i in np.flatnonzero(truth.astype(bool) & ~chosen.astype(bool))]
    return "\n".join(said + missed)


def figure(noisy: np.ndarray, recon: np.ndarray, clean: np.ndarray, labels: np.ndarray, chosen: np.ndarray,
           out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(noisy)
    fig, axes = plt.subplots(3, n, figsize=(2.0 * n, 7.2), squeeze=False)
    for row, (name, images) in enumerate((("degraded input", noisy), ("reconstruction", recon), ("clean target", clean))):
        for col in range(n):
            ax = axes[row][col]
            ax.imshow(images[col], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name, fontsize=10)
    for col in range(n):
        axes[2][col].set_xlabel(caption(labels[col], chosen[col]), fontsize=8, loc="left", family="monospace")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.overview_figure", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True, help="an exported artifact (.onnx, .xml, .engine)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--n", type=int, default=8, help="scenes, one column each (default 8)")
    p.add_argument("--start", type=int, default=0, help="first scene index of the drift seed (default 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 1 <= args.n <= 16:
        print(f"error: --n must be in 1..16, got {args.n}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    scenes = [render_scene(SceneConfig(), DRIFT_SEED, args.start + i) for i in range(args.n)]
    noisy, clean = np.stack([s.noisy for s in scenes]), np.stack([s.clean for s in scenes])
    labels = np.stack([s.labels for s in scenes])
    try:
        probs, recon = predict(args.model, noisy)
        figure(noisy, recon, clean, labels, top_t(labels, probs), args.out,
               f"{args.model.name} on held-out scenes (drift seed {DRIFT_SEED}, scenes {args.start}..{args.start + args.n - 1}); "
               "labels: + right, x wrong, - missed")
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(f"wrote {args.out}")
    return exitcodes.OK


if __name__ == "__main__":
    raise SystemExit(main())
