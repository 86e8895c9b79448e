"""The engine sidecar (model.engine.json) for jetson/build_engine.sh: what the engine was built from and for.

    python3 jetson/sidecar.py check ENGINE ONNX TRTEXEC   exit 0 when ENGINE's sidecar matches ONNX, TensorRT, GPU
    python3 jetson/sidecar.py write ENGINE ONNX TRTEXEC_LOG
    python3 jetson/sidecar.py qdq ONNX                     exit 0 when ONNX holds Q/DQ nodes (the INT8 model)

The sidecar holds the model's metadata, copied from the ONNX (labels, image size, normalisation: what the TensorRT
backend cannot read from the engine itself), and the cache key: the ONNX's sha256, the TensorRT version and the GPU
(name, compute capability) as trtexec reported them. `python -m runtime` refuses an engine whose sidecar names
another TensorRT or GPU (runtime.app.check_engine).
"""
from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for runtime.app

from dualpath.files import file_sha256  # noqa: E402
from runtime.app import engine_mismatches, running_tensorrt  # noqa: E402  (numpy + OpenCV, no torch)


sha256 = file_sha256


def onnx_metadata(path: Path) -> dict[str, str]:
    """The export's metadata pairs (labels, normalisation, size...): its metadata.json when it lies beside the ONNX,
    else the ONNX's metadata_props, read with onnx or onnxruntime, whichever is installed."""
    beside = path.with_name("metadata.json")
    if beside.is_file():
        return json.loads(beside.read_text())
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    except ImportError:
        pass
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except ImportError:
        sys.exit("error: reading the model's labels from the ONNX needs `pip install onnx` (or onnxruntime)")


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
    sidecar_path = engine.with_name(engine.name + ".json")
    if not (engine.exists() and sidecar_path.exists()):
        return 1
    sidecar = json.loads(sidecar_path.read_text())
    running = running_tensorrt()
    running["tensorrt_version"] = running["tensorrt_version"] or trtexec_version(trtexec)
    problems, warnings = engine_mismatches(sidecar, running)
    if problems or warnings or sidecar.get("onnx_sha256") != sha256(onnx):
        return 1
    return 0


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
    from export.tensorrt_build import engine_precision

    qdq, half = onnx_precisions(onnx)
    major = int(tensorrt_version.split(".")[0]) if tensorrt_version else 10
    return engine_precision(qdq, half or major < 11)


def write(engine: Path, onnx: Path, log: Path) -> int:
    built = parse_trtexec_log(log.read_text(errors="replace"))
    # The TensorRT backend compares the sidecar with tensorrt.__version__: take that spelling where Python has it.
    built["tensorrt_version"] = running_tensorrt()["tensorrt_version"] or built["tensorrt_version"]
    missing = [k for k, v in built.items() if v is None]
    if missing:
        print(f"warning: trtexec's log does not name {', '.join(missing)}; the runtime cannot check them", file=sys.stderr)
    sidecar = {
        **built,
        "gpu": built["gpu_name"],  # the key export/tensorrt_build.py writes
        "metadata": onnx_metadata(onnx) | {"precision": json.dumps(engine_precision_of(onnx, built["tensorrt_version"]))},
        "onnx": onnx.name,
        "onnx_sha256": sha256(onnx),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "builder": "jetson/build_engine.sh (trtexec)",
    }
    engine.with_name(engine.name + ".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "qdq":  # exit 0 when the ONNX is the QDQ INT8 model (build_engine.sh's --int8)
        return 0 if onnx_precisions(Path(argv[1]))[0] else 1
    if len(argv) != 4 or argv[0] not in ("check", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    command, engine, onnx, extra = argv
    if command == "check":
        return check(Path(engine), Path(onnx), extra)
    return write(Path(engine), Path(onnx), Path(extra))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
