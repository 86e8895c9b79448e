"""python -m dualpath.scenes {generate, preview, import-objects}: the Complex Scene Generator's command line."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from dualpath import exitcodes
from dualpath.cli import default, given
from dualpath.scenes.config import DegradeConfig, SceneConfig


def _config_from_args(args: argparse.Namespace) -> SceneConfig:
    """The --config file (else the defaults) with the scene options given: flags whose dest is a SceneConfig field,
    then those whose dest is a DegradeConfig field (--severity, --motion-blur-p, --jpeg-p) on its degrade."""
    base = _config_file(args.config) if args.config else SceneConfig()
    changes = given(SceneConfig, args)
    if args.cardinality:  # parsed here: a bad number is one line, exit 2
        changes["cardinality_weights"] = tuple(float(x) for x in args.cardinality.split(","))
    cfg = dataclasses.replace(base, **changes)
    return dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, **given(DegradeConfig, args)))


def _path_or_none(text: str) -> str | None:
    """An empty --objects / --backgrounds is as if not given."""
    return text or None


def _config_file(path: str) -> SceneConfig:
    from dualpath.files import read_json

    data = read_json(path, ValueError, missing=f"no --config file at {path}",
                     corrupt=f"--config {path} is not a SceneConfig JSON file ({{error}}); fix or remove it", expect=dict)
    try:
        return SceneConfig.from_dict(data)
    except (TypeError, KeyError) as e:
        raise ValueError(f"--config {path} is not a SceneConfig JSON file ({e}); see dualpath/scenes/config.py") from None


def _add_scene_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scene options (defaults: the embedded default data set)")
    g.add_argument("--seed", type=int, default=0, help="data set seed: scene i is a pure function of (config, seed, i)")
    g.add_argument("--config", help="a JSON file of SceneConfig fields (see dualpath/scenes/config.py)")
    g.add_argument("--severity", type=float, help="scale every degradation: 0 clean, 1 default, 2 very degraded")
    g.add_argument("--cardinality", help="P(1 object),P(2),P(3), e.g. 0.5,0.3,0.2 (default: equal thirds)")
    g.add_argument("--motion-blur-p", dest="motion_blur_p", type=float,
                   help=f"probability of motion blur (default {default(DegradeConfig, 'motion_blur_p'):g})")
    g.add_argument("--jpeg-p", dest="jpeg_p", type=float,
                   help=f"probability of JPEG artefacts (default {default(DegradeConfig, 'jpeg_p'):g})")
    g.add_argument("--objects", dest="object_bank", metavar="OBJECTS", type=_path_or_none,
                   help="an .npz of real-object sprites made by `import-objects` (replaces the procedural ones)")
    g.add_argument("--backgrounds", dest="background_dir", metavar="BACKGROUNDS", type=_path_or_none,
                   help="a folder of background photos (replaces the procedural counters and tables)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dualpath.scenes",
        description="The Complex Scene Generator: 64x64 kitchen scenes of 1-3 overlapping utensils (20 classes) "
        "on counters and tables, degraded (low light, blur, noise), with clean targets, labels, masks and boxes.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{generate,preview,import-objects}")

    g = sub.add_parser("generate", help="write a data set (arrays + manifest); reuses an identical one",
                       description="Generate N scenes into a folder of .npy arrays with a manifest.json. An existing "
                       "identical data set is reused; a different one is refused (use --overwrite).")
    g.add_argument("--n", type=int, default=6000, help="number of scenes (default 6000, the paper's size)")
    g.add_argument("--out", default="data/scenes", help="output folder (default data/scenes)")
    g.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    g.add_argument("--overwrite", action="store_true", help="replace a different data set at --out")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_scene_options(g)

    p = sub.add_parser("preview", help="a labelled PNG grid of noisy/clean pairs",
                       description="Render a grid of (degraded input | clean target) pairs with their labels.")
    p.add_argument("--out", default="preview.png", help="PNG path (default preview.png)")
    p.add_argument("--data", help="take the scenes from this data set folder instead of rendering them")
    p.add_argument("--count", type=int, default=16, help="number of scenes shown (default 16)")
    p.add_argument("--start", type=int, default=0, help="index of the first scene shown")
    p.add_argument("--cols", type=int, default=4)
    _add_scene_options(p)

    i = sub.add_parser("import-objects", help="real object photos (EKUD layout) -> an object bank .npz",
                       description="Import a folder with one sub-folder per class of photos of single objects on a "
                       "plain background (the Edinburgh Kitchen Utensil Database layout). Masks are used where the "
                       "folder has them (<class>/masks/<stem>.png or <stem>_mask.png); elsewhere the background is "
                       "removed with OpenCV. Unreadable images are skipped with a warning and counted.")
    i.add_argument("folder", help="the photo folder: <folder>/<class name>/*.jpg")
    i.add_argument("--out", default="data/objects.npz", help="object bank to write (default data/objects.npz)")
    return parser


def _generate(args: argparse.Namespace) -> int:
    from dualpath.scenes.dataset import generate_dataset

    cfg = _config_from_args(args)
    ds = generate_dataset(cfg, args.seed, args.n, args.out, workers=args.workers, progress=not args.quiet,
                          overwrite=args.overwrite)
    gen = ds.manifest.get("generation", {})
    if ds.reused:
        print(f"reusing {ds.path}: {len(ds)} scenes, identical config and seed (manifest checked, arrays verified)")
    else:
        print(f"wrote {ds.path}: {len(ds)} scenes in {gen['seconds']:.1f} s ({gen['scenes_per_second']:.0f} scenes/s, "
              f"{gen['workers']} workers)")
    stats = ds.manifest["statistics"]
    counts = list(stats["class_counts"].values())
    print(f"objects per scene {stats['cardinality_counts']}; per class {min(counts)}..{max(counts)}")
    return exitcodes.OK


def _preview(args: argparse.Namespace) -> int:
    import numpy as np

    from dualpath.files import check_writable
    from dualpath.scenes.preview import preview_grid

    check_writable(args.out, "file")

    if args.data:
        from dualpath.scenes.dataset import load_dataset

        ds = load_dataset(args.data, verify=False, mmap=True)
        sl = slice(args.start, min(args.start + args.count, len(ds)))
        noisy, clean, labels = ds.noisy[sl], ds.clean[sl], ds.labels[sl]
        title = f"{ds.path} (seed {ds.seed}): input (degraded) | target (clean)"
    else:
        from dualpath.scenes.dataset import render_range

        cfg = _config_from_args(args)
        arrays = render_range(cfg, args.seed, args.start, args.start + args.count)
        noisy, clean, labels = arrays["noisy"], arrays["clean"], arrays["labels"]
        title = f"seed {args.seed}, severity {cfg.degrade.severity:g}: input (degraded) | target (clean)"
    out = preview_grid(np.asarray(noisy), np.asarray(clean), np.asarray(labels), args.out, args.cols, title)
    print(f"wrote {out}")
    return exitcodes.OK


def _import_objects(args: argparse.Namespace) -> int:
    from dualpath.files import check_writable, folder_lock
    from dualpath.scenes.importer import import_objects, save_object_bank

    check_writable(args.out, "file")
    with folder_lock(args.out, "object import", inside=False):  # one writer per bank: a second one exits 2
        sprites, report = import_objects(args.folder)
        total = sum(report.imported.values())
        if total == 0:
            raise ValueError(f"no object imported from {args.folder} ({len(report.imported)} class folder(s), "
                             f"{len(report.skipped)} file(s) skipped as unreadable or without an object): nothing "
                             "written")
        save_object_bank(args.out, sprites)
    print(f"imported {total} objects into {args.out}; skipped {len(report.skipped)}")
    for name, count in sorted(report.imported.items()):
        print(f"  {name:15s} {count}")
    for path, why in report.skipped[:20]:
        print(f"  skipped {path}: {why}")
    if report.unknown_folders:
        print(f"  folders that are no class (ignored): {', '.join(report.unknown_folders)}")
    print(f"use it with: python -m dualpath.scenes generate --objects {args.out} ...")
    return exitcodes.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from dualpath.processes import sigterm_as_interrupt
    from dualpath.scenes.dataset import DatasetError

    try:
        with sigterm_as_interrupt():  # SIGTERM ends the run as Ctrl-C does: workers stopped, one line, exit 130
            return {"generate": _generate, "preview": _preview, "import-objects": _import_objects}[args.command](args)
    except (DatasetError, ValueError, OSError) as e:  # OSError: OutputError (full / read-only disk) and missing files
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was left behind", file=sys.stderr)
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
