"""The TensorRT format's step: the engines (INT8 from the s8 QDQ ONNX, FP16 from the FP16 ONNX) where TensorRT runs,
and always the build script for the device (an engine is tied to its GPU and TensorRT version)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from typing import Any

from export.artifacts import Artifact
from export.atomic import atomic_path, write_text
from export.context import Context


def step(config, ctx: Context, artifacts: list[Artifact]) -> dict[str, Any]:
    """Build `artifacts` (the engines) or their script; returns the recipes of the engines built."""
    ctx.manifest["tensorrt"] = build(config, ctx.log)
    return {e: {"format": "TensorRT engine", **info} for e, info in ctx.manifest["tensorrt"]["engines"].items()}


def build(config, log) -> dict[str, Any]:
    """Build the engines where TensorRT runs; otherwise leave the script and the commands to run on the device."""
    from runtime.backends import trt_engine

    engines = [a for a in config.artifacts.values() if a.format == "tensorrt"]
    script = config.out / "build_tensorrt_engine.py"
    with atomic_path(script) as tmp:
        shutil.copyfile(trt_engine.__file__, tmp)  # standard library only: it runs alone on the device
    commands = {a.name: trt_engine.command(a.source, a.name, config.max_batch) for a in engines}
    write_text(config.out / "build_tensorrt_engine.sh", build_script(commands, engines, config.max_batch))
    result: dict[str, Any] = {"built": False, "commands": commands, "command": "\n".join(commands.values()),
                              "script": script.name, "engines": {}}
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        log(f"TensorRT: not installed here; on the device run: sh {config.out / 'build_tensorrt_engine.sh'}")
        return result | {"reason": "tensorrt is not importable on the export machine"}
    metadata = json.loads((config.out / "metadata.json").read_text())
    for a in engines:
        sidecar = trt_engine.build(config.out / a.source, config.out / a.name, metadata, config.max_batch,
                                   timing_cache=config.out / "tensorrt.cache")
        precision, target = json.loads(sidecar.metadata["precision"]), sidecar.target
        log(f"TensorRT engine: {config.out / a.name} ({precision}, {target.gpu_name or 'unnamed GPU'}, "
            f"TensorRT {target.tensorrt_version})")
        result["engines"][a.name] = {"onnx": a.source, "precision": precision, **dataclasses.asdict(target)}
    return result | {"built": True}


def build_script(commands: dict[str, str], engines: list[Artifact], max_batch: int) -> str:
    """build_tensorrt_engine.sh: the script's commands, and trtexec's equivalents as comments."""
    from dualpath.contract import IMAGE_SIZE
    from runtime.backends.trt_engine import trtexec_args

    trtexec = [" ".join(["trtexec", *trtexec_args(a.source, a.name, max_batch, qdq=a.precision == "int8",
                                                  image_size=IMAGE_SIZE, extra=("--timingCacheFile=tensorrt.cache",))])
               for a in engines]
    return ("#!/bin/sh\n# Run on the target device (TensorRT 10.x / 11.x): an engine is tied to its GPU and version.\n"
            "set -e\ncd \"$(dirname \"$0\")\"\n" + "\n".join(commands.values())
            + "\n# equivalent without the sidecars (prefer the script):\n" + "".join(f"# {c}\n" for c in trtexec))
