"""Build a TensorRT engine from the QDQ INT8 ONNX (explicit quantization) or the FP16 ONNX, with a timing cache and
a sidecar whose metadata names the engine's real precision.

Runs on the target device (a Jetson with JetPack 6 / TensorRT 10, or any TensorRT 10/11 GPU machine); needs only
tensorrt (and onnx, or the export's metadata.json). The exporter copies this file beside its artifacts:

    python3 build_tensorrt_engine.py model_int8_s8.onnx --metadata metadata.json --out model_int8.engine
    python3 build_tensorrt_engine.py model_fp16.onnx --metadata metadata.json --out model_fp16.engine

TensorRT 10 builds the QDQ graph with the INT8 flag (FP16 allowed for the float parts); TensorRT 11 has only
strongly typed networks, where the Q/DQ nodes alone fix the precisions. Implicit INT8 calibrators are not used
(deprecated since 10.1, removed in 11).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

INPUT = "image"


def file_sha256(path: Path) -> str:  # own copy: this file is also shipped alone, as build_tensorrt_engine.py
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(onnx_path: Path, metadata_json: Path | None) -> dict[str, str]:
    if metadata_json is not None:
        return json.loads(Path(metadata_json).read_text())
    import onnx

    return {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}


def gpu_description() -> dict[str, str]:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return {"gpu": "unknown (cuda-python not installed)", "compute_capability": "unknown"}
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        return {"gpu": "unknown", "compute_capability": "unknown"}
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return {"gpu": name.strip("\x00"), "compute_capability": f"{props.major}.{props.minor}"}


def build(onnx_path: Path, out: Path, metadata: dict[str, str], max_batch: int = 32, fp16: bool = True,
          workspace_mib: int = 1024, timing_cache: Path | None = None) -> dict:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if major >= 11 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}:\n{errors}")
    qdq, half = network_precisions(trt, network)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if major < 11:
        if qdq:
            config.set_flag(trt.BuilderFlag.INT8)  # honour the graph's Q/DQ nodes
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
    # The engine's own precision, not the FP32 metadata.json's it was given.
    metadata = dict(metadata) | {"precision": json.dumps(engine_precision(qdq, half or (fp16 and major < 11)))}
    size = int(json.loads(metadata["image_size"]))
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, (1, 3, size, size), (1, 3, size, size), (max_batch, 3, size, size))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    _atomic_write(out, bytes(engine))
    if timing_cache is not None:
        _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
    sidecar = {"metadata": metadata, "tensorrt_version": trt.__version__, **gpu_description(),
               "onnx": onnx_path.name, "onnx_sha256": file_sha256(onnx_path), "max_batch": max_batch,
               "fp16": fp16 and major < 11, "strongly_typed": major >= 11, "engine_sha256": file_sha256(out)}
    _atomic_write(out.with_name(out.name + ".json"), (json.dumps(sidecar, indent=1) + "\n").encode())
    return sidecar


def network_precisions(trt, network) -> tuple[bool, bool]:
    """(Q/DQ layers present: an explicitly quantized INT8 network; FP16 tensors present: an FP16 ONNX)."""
    qdq_types = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    qdq = half = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        qdq = qdq or layer.type in qdq_types
        half = half or any(layer.get_output(j).dtype == trt.DataType.HALF for j in range(layer.num_outputs))
    return qdq, half


def engine_precision(qdq: bool, fp16: bool) -> str:
    """The precision an engine runs in, as the model metadata names it: "int8-qdq" (+fp16 where TensorRT may run the
    unquantized layers in FP16), "fp16" or "fp32"."""
    if qdq:
        return "int8-qdq+fp16" if fp16 else "int8-qdq"
    return "fp16" if fp16 else "fp32"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def command(onnx_name: str, engine_name: str, max_batch: int = 32) -> str:
    return (f"python3 build_tensorrt_engine.py {onnx_name} --metadata metadata.json --out {engine_name} "
            f"--max-batch {max_batch} --timing-cache tensorrt.cache")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build a TensorRT engine from a QDQ INT8 (or FP16) ONNX on this device.")
    p.add_argument("onnx", type=Path)
    p.add_argument("--out", type=Path, required=True, help="engine file (.engine)")
    p.add_argument("--metadata", type=Path, help="metadata.json from the export (else read from the ONNX)")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--no-fp16", action="store_true", help="TensorRT 10: keep the float parts in FP32")
    p.add_argument("--timing-cache", type=Path, default=Path("tensorrt.cache"))
    args = p.parse_args(argv)
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        print("error: tensorrt is not importable here; on a Jetson it comes with JetPack (python3-libnvinfer)",
              file=sys.stderr)
        return 2
    sidecar = build(args.onnx, args.out, read_metadata(args.onnx, args.metadata), args.max_batch,
                    not args.no_fp16, timing_cache=args.timing_cache)
    print(f"built {args.out} with TensorRT {sidecar['tensorrt_version']} on {sidecar['gpu']} "
          f"(compute capability {sidecar['compute_capability']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
