"""A video made of generated scenes, for `make demo`, benchmarks and tests of the runtime without a camera.

    python -m runtime.demo_video --out data/demo.mp4 [--n 120] [--seed 5] [--size 256] [--hold 1]

Each 64x64 scene (dualpath.scenes, numpy + OpenCV) is enlarged with nearest neighbour to size x size (a multiple
of 64, so the runtime's INTER_AREA resize gives the scene back exactly) and shown for `hold` frames. Use .mkv for
a lossless video (FFV1: decoded frames equal the scenes), .mp4 (mp4v) or .avi (MJPG) for ordinary lossy ones.
The default seed (5) is not a training seed of the demo, so the clip shows scenes the model has not seen.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from dualpath import contract, exitcodes
from dualpath.scenes import SceneConfig
from dualpath.scenes.dataset import render_range

CODECS = {".mkv": "FFV1", ".mp4": "mp4v", ".avi": "MJPG"}


def write_scene_video(
    path: str | Path, scenes_rgb: np.ndarray, *, size: int = 256, hold: int = 1, fps: float = 30.0
) -> Path:
    """uint8 RGB scenes (N, 64, 64, 3) -> a BGR video of size x size frames; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in CODECS:
        raise ValueError(f"the video must end in one of {', '.join(CODECS)}, got {path.name}")
    if size < contract.IMAGE_SIZE or size % contract.IMAGE_SIZE:
        raise ValueError(f"size must be a multiple of {contract.IMAGE_SIZE} (the scenes are enlarged by a whole factor), got {size}")
    if hold < 1:
        raise ValueError(f"hold must be >= 1 frame per scene, got {hold}")
    from dualpath.files import atomic_path

    with atomic_path(path) as tmp:  # a temporary with the same suffix (the container), renamed when complete
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*CODECS[path.suffix.lower()]), fps, (size, size))
        if not writer.isOpened():
            raise OSError(f"cannot write {path}: check that its folder exists and is writable")
        try:
            for rgb in scenes_rgb:
                frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (size, size), interpolation=cv2.INTER_NEAREST)
                for _ in range(hold):
                    writer.write(frame)
        finally:
            writer.release()
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtime.demo_video", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="video file: .mkv (lossless), .mp4 or .avi")
    p.add_argument("--n", type=int, default=120, help="number of scenes (default 120)")
    p.add_argument("--seed", type=int, default=5, help="scene seed (default 5)")
    p.add_argument("--size", type=int, default=256, help="frame side in pixels, a multiple of 64 (default 256)")
    p.add_argument("--hold", type=int, default=1, help="frames per scene (default 1)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n must be >= 1, got {args.n}")
    scenes = render_range(SceneConfig(), args.seed, 0, args.n)["noisy"]
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot make the folder of --out {args.out}: {e.strerror}; choose another --out", file=sys.stderr)
        return exitcodes.BAD_INPUT
    try:
        path = write_scene_video(args.out, scenes, size=args.size, hold=args.hold)
    except (ValueError, OSError) as e:  # a bad --size, an unwritable --out
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(f"wrote {path}: {args.n} scenes x {args.hold} frames, {args.size}x{args.size}")
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
