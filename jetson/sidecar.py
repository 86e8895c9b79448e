"""The engine sidecar (model.engine.json) for jetson/build_engine.sh: what the engine was built from and for.

    python3 -m jetson.sidecar check ENGINE ONNX TRTEXEC   exit 0 when ENGINE's sidecar matches ONNX, TensorRT, GPU
    python3 -m jetson.sidecar write ENGINE ONNX TRTEXEC_LOG
    python3 -m jetson.sidecar qdq ONNX                     exit 0 when ONNX holds Q/DQ nodes (the INT8 model)
    python3 -m jetson.sidecar trtexec ONNX ENGINE MAX_BATCH WORKSPACE_MIB TENSORRT_MAJOR
                                                           trtexec's arguments, one a line

Run with the repository on the path (build_engine.sh sets PYTHONPATH). The sidecar's schema, its check and the GPU
inspection are runtime.backends.trt_engine's (the TensorRT backend reads the same file and refuses an engine built
for another TensorRT or GPU); this file adds what only trtexec builds need: the TensorRT version and GPU from
trtexec's output, the engine's precision from the ONNX's graph.
"""
from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

from runtime.backends import trt_engine  # standard library only; no torch


def trtexec_version(trtexec: str) -> str | None:
    """'10.3.0' from the banner of `trtexec --help` ('[TensorRT v100300]')."""
    out = subprocess.run([trtexec, "--help"], capture_output=True, text=True).stdout
    match = re.search(r"TensorRT v(\d+)", out)
    if not match:
        return None
    code = int(match.group(1))
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def parse_trtexec_log(text: str) -> dict[str, str | None]:
    """TensorRT version and the GPU from trtexec's 'Device Information' block."""

    def field(pattern: str) -> str | None:
        match = re.search(pattern, text)
        return match.group(1).strip() if match else None

    return {
        "tensorrt_version": field(r"TensorRT version: ([0-9.]+)"),
        "gpu_name": field(r"Selected Device: (.+)"),
        "compute_capability": field(r"Compute Capability: ([0-9.]+)"),
    }


def check(engine: Path, onnx: Path, trtexec: str) -> int:
    running = trt_engine.here()
    if running.tensorrt_version is None:  # no TensorRT Python module: trtexec says which TensorRT builds
        running = trt_engine.Target(trtexec_version(trtexec), running.gpu_name, running.compute_capability)
    return 0 if trt_engine.is_current(engine, onnx, running) else 1


def onnx_precisions(onnx: Path) -> tuple[bool, bool]:
    """(Q/DQ nodes: the explicitly quantized INT8 model; FP16 weights) from the ONNX's graph; without an ONNX reader
    installed, from the export's file names (model_int8_s8.onnx, model_fp16.onnx)."""
    try:
        import onnx as onnx_lib
    except ImportError:
        return "int8" in onnx.name, "fp16" in onnx.name
    graph = onnx_lib.load(str(onnx), load_external_data=False).graph
    return (any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node),
            any(i.data_type == onnx_lib.TensorProto.FLOAT16 for i in graph.initializer))


def engine_precision_of(onnx: Path, tensorrt_version: str | None) -> str:
    """The engine's precision, from the ONNX it is built from (metadata.json beside it describes the FP32 model):
    INT8 when the graph holds Q/DQ nodes, FP16 when its weights are FP16 or build_engine.sh passes --fp16 (TensorRT
    < 11)."""
    qdq, half = onnx_precisions(onnx)
    major = int(tensorrt_version.split(".")[0]) if tensorrt_version else 10
    return trt_engine.engine_precision(qdq, half or major < 11)


def write(engine: Path, onnx: Path, log: Path) -> int:
    logged, running = parse_trtexec_log(log.read_text(errors="replace")), trt_engine.here()
    # The TensorRT backend compares the sidecar with tensorrt.__version__: take that spelling where Python has it; the
    # GPU trtexec selected, else the one the driver names.
    built = trt_engine.Target(running.tensorrt_version or logged["tensorrt_version"],
                              logged["gpu_name"] or running.gpu_name,
                              logged["compute_capability"] or running.compute_capability)
    missing = [k for k, v in vars(built).items() if v is None]
    if missing:
        print(f"warning: trtexec's log does not name {', '.join(missing)}; the runtime cannot check them", file=sys.stderr)
    precision = engine_precision_of(onnx, built.tensorrt_version)
    sidecar = trt_engine.Sidecar(
        metadata=trt_engine.model_metadata(onnx) | {"precision": json.dumps(precision)},
        target=built, onnx=onnx.name, onnx_sha256=trt_engine.file_sha256(onnx),
        builder="jetson/build_engine.sh (trtexec)",
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    trt_engine.write_sidecar(engine, sidecar)
    return 0


def trtexec_command(onnx: str, engine: str, max_batch: int, workspace_mib: int, tensorrt_major: int) -> list[str]:
    """build_engine.sh's trtexec arguments: the export's command line (trt_engine.trtexec_args), precision flags from
    the ONNX's graph (--int8 only for the QDQ model), the workspace, and no timing run (the engine is only built)."""
    from dualpath.contract import IMAGE_SIZE

    return trt_engine.trtexec_args(onnx, engine, max_batch, qdq=onnx_precisions(Path(onnx))[0],
                                   image_size=IMAGE_SIZE, tensorrt_major=tensorrt_major,
                                   extra=(f"--memPoolSize=workspace:{workspace_mib}", "--skipInference"))


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "qdq":  # exit 0 when the ONNX is the QDQ INT8 model (build_engine.sh's --int8)
        return 0 if onnx_precisions(Path(argv[1]))[0] else 1
    if len(argv) == 6 and argv[0] == "trtexec":
        try:
            print("\n".join(trtexec_command(argv[1], argv[2], *map(int, argv[3:]))))
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    if len(argv) != 4 or argv[0] not in ("check", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    command, engine, onnx, extra = argv
    if command == "check":
        return check(Path(engine), Path(onnx), extra)
    try:
        return write(Path(engine), Path(onnx), Path(extra))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
