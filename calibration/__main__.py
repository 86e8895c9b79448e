"""python -m calibration --n 300 --out data/calib: write a calibration set (cached, with manifest) and a preview."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calibration.sets import CalibrationConfig, build_calibration_set
from dualpath import exitcodes
from dualpath.cli import default, fill
from dualpath.scenes import DatasetError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m calibration",
        description="Generate an INT8 calibration set from the scene generator, on a seed stream disjoint from "
        "training, validation, test and drift sets. Reused when the folder already holds the same set.",
    )
    p.add_argument("--out", type=Path, required=True, help="data set folder to write (or reuse)")
    n, seed = default(CalibrationConfig, "n"), default(CalibrationConfig, "seed")
    p.add_argument("--n", type=int, default=n, help=f"scenes (default {n})")
    p.add_argument("--seed", type=int, default=seed, help=f"seed (default {seed})")
    p.add_argument("--workers", type=int, default=1, help="processes for generating scenes")
    p.add_argument("--preview", type=int, default=16, help="scenes in preview.png (0: none)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different calibration / scenes set at --out (never a folder of other files)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = fill(CalibrationConfig, args)
        ds = build_calibration_set(config, args.out, workers=args.workers, progress=sys.stderr.isatty(),
                                   overwrite=args.overwrite, wait=False)  # a second calibration into it: exit 2
    except (ValueError, DatasetError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:  # the set is written under a temporary name, removed on the way out
        print(f"interrupted: nothing half-written was left in {args.out}; run the command again", file=sys.stderr)
        return exitcodes.INTERRUPTED
    state = "reused" if ds.reused else "wrote"
    print(f"{state} {len(ds)} calibration scenes (seed {config.seed}) in {ds.path}")
    if args.preview > 0:
        try:
            _preview(ds, config, args.preview)
        except KeyboardInterrupt:  # the set is whole; the preview is written atomically, or not at all
            print(f"interrupted: the calibration set in {ds.path} is whole, its preview was not written",
                  file=sys.stderr)
            return exitcodes.INTERRUPTED
    return exitcodes.OK


def _preview(ds, config: CalibrationConfig, count: int) -> None:
    from dualpath.files import OutputError
    from dualpath.scenes.preview import preview_grid

    k = min(count, len(ds))
    try:
        png = preview_grid(ds.noisy[:k], ds.clean[:k], ds.labels[:k], ds.path / "preview.png",
                           title=f"calibration set, seed {config.seed}: input | target")
    except OutputError as e:  # a set reused from a read-only place is still a good set
        print(f"warning: no preview: {e}", file=sys.stderr)
        return
    print(f"preview: {png}")


if __name__ == "__main__":
    raise SystemExit(main())
