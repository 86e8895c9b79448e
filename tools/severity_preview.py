"""The degradation scale at a glance: the same scenes at severities 0, 1, 2, 3, and the numbers behind it.

    python -m tools.severity_preview --out docs/images/severity_scale.png
    python -m tools.severity_preview --measure 120 --severities 0,0.5,1,1.5,2,2.5,3,4

The figure has one row per severity and one column per scene (the drift scenes, dualpath.seeds.DRIFT_SEED, which
the drift sweep degrades); each row is titled with its mean intensity and SSIM to the clean scene. --measure N prints
a table over N scenes a level instead (mean intensity, dark shares, SSIM and PSNR to the clean scene, the drawn blur,
noise and brightness, and the JPEG quality each level would use with --jpeg-p 1): docs/measurements.md holds it.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from typing import Sequence

import numpy as np

from dualpath import exitcodes
from dualpath.cli import comma_list
from dualpath.metrics import image_metrics
from dualpath.scenes import SceneConfig, render_scene
from dualpath.scenes import compose
from dualpath.scenes.degrade import Degradation, draw
from dualpath.seeds import DRIFT_SEED


def render_level(config: SceneConfig, severity: float, seed: int, indices: Sequence[int]
                 ) -> tuple[np.ndarray, np.ndarray, list[Degradation]]:
    """(noisy, clean, the drawn degradations) of scenes `indices` at `severity`; uint8 NHWC."""
    cfg = config.with_severity(severity)
    drawn: list[Degradation] = []
    real = compose.degrade

    def spy(clean, dcfg, rng):  # the parameters this scene's degradation draws, from a copy of its random stream
        drawn.append(draw(dcfg, copy.deepcopy(rng)))
        return real(clean, dcfg, rng)

    compose.degrade = spy
    try:
        scenes = [render_scene(cfg, seed, i) for i in indices]
    finally:
        compose.degrade = real
    return np.stack([s.noisy for s in scenes]), np.stack([s.clean for s in scenes]), drawn


def level_statistics(noisy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Per-scene mean intensity (0-1) summarised, and SSIM / PSNR of the degraded scene to its clean scene."""
    means = noisy.reshape(len(noisy), -1).mean(1) / 255
    m = image_metrics(noisy / np.float32(255), clean / np.float32(255))
    return {"mean_min": float(means.min()), "mean_p5": float(np.percentile(means, 5)),
            "mean_median": float(np.median(means)), "dark_05": float((means < 0.05).mean()),
            "dark_10": float((means < 0.10).mean()), "ssim": m["ssim"], "psnr": m["psnr"]}


def measure(config: SceneConfig, severities: Sequence[float], n: int, seed: int) -> list[str]:
    """The table's Markdown lines."""
    jpeg_cfg = dataclasses.replace(config, degrade=dataclasses.replace(config.degrade, jpeg_p=1.0))
    lines = ["| severity | mean min / p5 / median | mean < 0.05 | mean < 0.10 | SSIM | PSNR dB | brightness | "
             "blur sigma | noise std | JPEG q (--jpeg-p 1) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in severities:
        noisy, clean, drawn = render_level(config, s, seed, range(n))
        st = level_statistics(noisy, clean)
        _, _, jd = render_level(jpeg_cfg, s, seed, range(n))
        q = [d.jpeg_quality for d in jd]

        def span(name: str) -> str:
            v = [getattr(d, name) for d in drawn]
            return f"{min(v):.2f}-{max(v):.2f}"

        lines.append(f"| {s:g} | {st['mean_min']:.3f} / {st['mean_p5']:.3f} / {st['mean_median']:.3f} | "
                     f"{st['dark_05']:.0%} | {st['dark_10']:.0%} | {st['ssim']:.3f} | {st['psnr']:.1f} | "
                     f"{span('brightness')} | {span('blur_sigma')} | {span('noise_std')} | "
                     f"{min(q)}-{max(q)} (median {int(np.median(q))}) |")
    return lines


def figure(config: SceneConfig, severities: Sequence[float], indices: Sequence[int], seed: int, out: str,
           jpeg_p: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dualpath.files import atomic_path

    cfg = dataclasses.replace(config, degrade=dataclasses.replace(config.degrade, jpeg_p=jpeg_p))
    rows, cols = len(severities), len(indices)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.25, rows * 1.42 + 0.35), squeeze=False)
    for r, s in enumerate(severities):
        noisy, clean, _ = render_level(cfg, s, seed, indices)
        st = level_statistics(noisy, clean)
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(noisy[c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"severity {s:g}", fontsize=9)
        axes[r, cols // 2].set_title(f"mean intensity {st['mean_median']:.2f} (median), SSIM to clean {st['ssim']:.2f}",
                                     fontsize=8, x=0 if cols % 2 == 0 else 0.5)
    jpeg = f", JPEG p={jpeg_p:g}" if jpeg_p else ""
    fig.suptitle(f"the same drift scenes (seed {seed}) at each severity{jpeg}", fontsize=10)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.severity_preview", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/images/severity_scale.png", help="the figure's PNG path")
    p.add_argument("--severities", type=lambda t: [float(x) for x in comma_list(t)], default=[0.0, 1.0, 2.0, 3.0])
    p.add_argument("--scenes", default="0,1,2,3,4,5,6,7", help="scene indices, one column each")
    p.add_argument("--seed", type=int, default=DRIFT_SEED, help=f"scene seed (default the drift seed, {DRIFT_SEED})")
    p.add_argument("--jpeg-p", dest="jpeg_p", type=float, default=0.0, help="probability of JPEG (default 0)")
    p.add_argument("--measure", type=int, metavar="N", help="print the scale's table over N scenes a level instead")
    args = p.parse_args(argv)
    try:
        if args.measure:
            print("\n".join(measure(SceneConfig(), args.severities, args.measure, args.seed)))
        else:
            figure(SceneConfig(), args.severities, [int(i) for i in comma_list(args.scenes)], args.seed, args.out,
                   args.jpeg_p)
            print(f"wrote {args.out}")
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
