"""Scene generation speed: scenes/s with 1 and 2 worker processes (target: >= 1000 scenes/s on 2 cores).

    python -m benchmarks.scenes [--n 6000] [--workers 1,2] [--out benchmarks/results/scenes.json]

Two numbers per worker count: `render` times the scene rendering alone (the bank already built, workers started),
`end to end` times `generate_dataset` into a fresh folder: worker start-up, rendering, writing the arrays and
hashing them. The bank (the catalogue of sprites and backgrounds, built once per run) is timed on its own.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from dualpath.machine import describe, headline
from dualpath.scenes import SceneConfig, generate_dataset
from dualpath.scenes.bank import _build_bank
from dualpath.scenes.dataset import iter_chunks, scene_pool


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6000, help="scenes per measurement (default 6000, the paper's size)")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--out", default="benchmarks/results/scenes.json", help="JSON results file")
    args = p.parse_args(argv)

    config = SceneConfig()
    t0 = time.perf_counter()
    _build_bank(config)
    bank_s = time.perf_counter() - t0
    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        n = 0
        if workers == 1:
            t0 = time.perf_counter()
            for _, chunk in iter_chunks(config, 0, args.n, 1):
                n += len(chunk["labels"])
            render_s = time.perf_counter() - t0
        else:
            with scene_pool(config, workers) as pool:
                list(iter_chunks(config, 123, 16 * workers, workers, chunk=8, pool=pool))  # start the workers
                t0 = time.perf_counter()
                for _, chunk in iter_chunks(config, 0, args.n, workers, pool=pool):
                    n += len(chunk["labels"])
                render_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate_dataset(config, 0, args.n, Path(tmp) / "scenes", workers=workers, progress=False)
            e2e_s = time.perf_counter() - t0
        rows.append({"workers": workers, "n": n, "render_scenes_per_s": n / render_s, "end_to_end_scenes_per_s": n / e2e_s,
                     "end_to_end_s": e2e_s})

    machine = describe()
    print(f"scene generation, {args.n} scenes of 64x64, on {headline(machine)}")
    print(f"bank (catalogue) build: {bank_s:.2f} s, once per run")
    print(f"{'workers':>8} {'render scenes/s':>16} {'end-to-end scenes/s':>20} {'end-to-end s':>13}")
    for r in rows:
        print(f"{r['workers']:>8} {r['render_scenes_per_s']:>16.0f} {r['end_to_end_scenes_per_s']:>20.0f} {r['end_to_end_s']:>13.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "scenes", "machine": machine, "bank_build_s": bank_s, "rows": rows}, indent=1))
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
