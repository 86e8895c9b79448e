"""TensorRT engine files, all but running them (runtime.backends.trt runs them): the sidecar beside every engine, the
check that an engine fits this TensorRT and GPU, the GPU inspection behind it, and the build from the QDQ INT8 (or
FP16) ONNX with TensorRT's Python API.

An engine runs only with the TensorRT version and the GPU architecture that built it, and carries none of the model's
metadata, so each engine has a sidecar, `model.engine.json` (Sidecar below): the model's metadata pairs (labels,
normalisation, size, the engine's own precision) and what the engine is tied to. Three writers use it (this file's
build(), jetson/build_engine.sh through jetson/sidecar.py, the export), two readers (the TensorRT backend, and
build_engine.sh's "is it up to date" check).

Standard library only (tensorrt, onnx imported where used): the export ships this file alone as
build_tensorrt_engine.py, to build on the device (a Jetson with JetPack 6 / TensorRT 10, or any TensorRT 10/11 GPU):

    python3 build_tensorrt_engine.py model_int8_s8.onnx --metadata metadata.json --out model_int8.engine
    python3 build_tensorrt_engine.py model_fp16.onnx --metadata metadata.json --out model_fp16.engine

TensorRT 10 builds the QDQ graph with the INT8 flag (FP16 allowed for the float parts); TensorRT 11 has only strongly
typed networks, where the Q/DQ nodes alone fix the precisions. Implicit INT8 calibrators are not used (deprecated
since 10.1, removed in 11).
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENGINE_SUFFIXES = (".engine", ".plan")
INPUT = "image"


# ------------------------------------------------------------------------------------------------ the sidecar


def normalise_compute_capability(value: Any) -> str | None:
    """'8.7', 8.7, [8, 7], (8, 7), 'sm_87', '87' -> '8.7'; None for missing / unreadable values."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{int(value[0])}.{int(value[1])}"
    text = str(value).strip().lower().removeprefix("sm_")
    if "." in text:
        major, _, minor = text.partition(".")
        return f"{int(major)}.{int(minor)}" if major.isdigit() and minor.isdigit() else None
    return f"{text[:-1]}.{text[-1]}" if text.isdigit() and len(text) >= 2 else None


@dataclass(frozen=True)
class Target:
    """What an engine is tied to, or what this machine has; None where unknown ("unknown ..." texts included)."""

    tensorrt_version: str | None = None  # tensorrt.__version__, e.g. "10.3.0"
    gpu_name: str | None = None  # e.g. "Orin"; the same architecture under another name only costs speed
    compute_capability: str | None = None  # "8.7": another one cannot run the engine

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensorrt_version", _known(self.tensorrt_version))
        object.__setattr__(self, "gpu_name", _known(self.gpu_name))
        object.__setattr__(self, "compute_capability", normalise_compute_capability(self.compute_capability))


def _known(value: Any) -> str | None:
    return None if value is None or str(value) in ("", "None") or str(value).startswith("unknown") else str(value)


# Spellings older sidecars used -> the key written now (export/tensorrt_build.py wrote "gpu").
OLD_KEYS = {"gpu": "gpu_name"}


@dataclass(frozen=True)
class Sidecar:
    """model.engine.json. Written flat: {"metadata": {...}, "tensorrt_version", "gpu_name", "compute_capability",
    "onnx", "onnx_sha256", "builder", "built_at", and the builder's own facts (max_batch, fp16, engine_sha256...)}."""

    metadata: dict[str, str]  # the model's metadata pairs, values JSON-encoded as in the ONNX (precision: the engine's)
    target: Target  # the TensorRT and GPU that built it
    onnx: str | None = None  # the ONNX file it was built from, and its sha256 (with target: the cache key)
    onnx_sha256: str | None = None
    builder: str = ""  # "build_tensorrt_engine.py" or "jetson/build_engine.sh (trtexec)"
    built_at: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # how the builder built it: max_batch, fp16, strongly_typed...

    def to_dict(self) -> dict[str, Any]:
        fixed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("target", "facts")}
        return {**self.facts, **fixed, **dataclasses.asdict(self.target)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sidecar":
        """Any sidecar this project ever wrote: an old spelling counts where the new one is absent."""
        data = dict(data)
        for old, new in OLD_KEYS.items():
            if old in data:
                data.setdefault(new, data.pop(old))
        target = Target(**{f.name: data.pop(f.name, None) for f in dataclasses.fields(Target)})
        fixed = {f.name: data.pop(f.name) for f in dataclasses.fields(cls) if f.name in data and f.name != "facts"}
        return cls(**{"metadata": {}, **fixed}, target=target, facts=data)


def sidecar_path(engine: Path) -> Path:
    """model.engine -> model.engine.json (model.json accepted for hand-built engines)."""
    for candidate in (engine.with_name(engine.name + ".json"), engine.with_suffix(".json")):
        if candidate.exists():
            return candidate
    return engine.with_name(engine.name + ".json")


def read_sidecar(engine: Path, error: type[Exception] = ValueError) -> Sidecar:
    """The engine's sidecar; `error` (one line saying what to do) when it is missing or unreadable."""
    path = sidecar_path(engine)
    rebuild = "build the engine again with build_tensorrt_engine.py (from the export) or jetson/build_engine.sh"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{engine} has no sidecar {path.name}: {rebuild}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"cannot read the engine sidecar {path} ({e}): {rebuild}") from None
    if not isinstance(data, dict):
        raise error(f"the engine sidecar {path} is not a JSON object: {rebuild}")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise error(f"the engine sidecar {path}: field metadata must be an object of JSON texts, got "
                    f"{json.dumps(metadata)[:80]}: {rebuild}")
    for key in ("tensorrt_version", "gpu_name", "gpu", "onnx", "onnx_sha256", "builder", "built_at"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise error(f"the engine sidecar {path}: field {key} must be a string, got {json.dumps(data[key])[:80]}: "
                        f"{rebuild}")
    try:
        return Sidecar.from_dict(data)
    except (TypeError, ValueError) as e:  # e.g. a compute_capability of [8, "x"]
        raise error(f"the engine sidecar {path} is not one this project writes ({e}): {rebuild}") from None


def write_sidecar(engine: Path, sidecar: Sidecar) -> Path:
    path = engine.with_name(engine.name + ".json")
    _atomic_write(path, (json.dumps(sidecar.to_dict(), indent=1) + "\n").encode())
    return path


# ------------------------------------------------------------------------------------------------ does it fit here


def gpu(device: int = 0) -> tuple[str | None, str | None]:
    """(name, compute capability) of a GPU through the CUDA driver (libcuda: on desktops and Jetsons, without
    cuda-python); (None, None) without one."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        handle, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        name = ctypes.create_string_buffer(256)
        if cuda.cuInit(0) or cuda.cuDeviceGet(ctypes.byref(handle), device) or cuda.cuDeviceGetName(name, 256, handle):
            return None, None
        # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75, _MINOR = 76 (cuda.h)
        cuda.cuDeviceGetAttribute(ctypes.byref(major), 75, handle)
        cuda.cuDeviceGetAttribute(ctypes.byref(minor), 76, handle)
    except (OSError, AttributeError):
        return None, None
    return name.value.decode(errors="replace"), f"{major.value}.{minor.value}"


def here(tensorrt_version: str | None = None, device: int = 0) -> Target:
    """This machine's TensorRT (importing it when no version is given) and GPU."""
    if tensorrt_version is None:
        try:
            import tensorrt

            tensorrt_version = tensorrt.__version__
        except ImportError:
            pass
    return Target(tensorrt_version, *gpu(device))


def mismatches(built: Target, running: Target) -> tuple[list[str], list[str]]:
    """(problems that make the engine unusable here, warnings). A check that cannot be made is a warning."""
    problems, warnings = [], []
    if built.tensorrt_version is None or running.tensorrt_version is None:
        unknown = "the sidecar has none" if built.tensorrt_version is None else "unknown here"
        warnings.append(f"TensorRT version not checked ({unknown})")
    elif built.tensorrt_version != running.tensorrt_version:
        problems.append(f"built with TensorRT {built.tensorrt_version}, "
                        f"this device has TensorRT {running.tensorrt_version}")
    if built.compute_capability is None or running.compute_capability is None:
        warnings.append("GPU compute capability not checked")
    elif built.compute_capability != running.compute_capability:
        problems.append(f"built for a GPU of compute capability {built.compute_capability} "
                        f"({built.gpu_name or 'unknown GPU'}), this GPU is {running.compute_capability} "
                        f"({running.gpu_name or 'unknown GPU'})")
    elif built.gpu_name and running.gpu_name and built.gpu_name != running.gpu_name:
        # Same architecture, other model: TensorRT loads it, but its tactics were timed on the other chip.
        warnings.append(f"built on {built.gpu_name}, running on {running.gpu_name}: it loads, but rebuild here for "
                        "full speed")
    return problems, warnings


def refusal_message(engine: Path, problems: list[str]) -> str:
    return (
        f"the TensorRT engine {engine} cannot run on this device: {'; '.join(problems)}. Engines only run with the "
        "TensorRT version and GPU they were built with; rebuild it here from the export's QDQ INT8 ONNX: "
        f"`jetson/build_engine.sh model_int8_s8.onnx {engine}` (trtexec), or in the export folder "
        f"`python3 build_tensorrt_engine.py model_int8_s8.onnx --metadata metadata.json --out {engine}`; "
        "both write the sidecar this check reads"
    )


def is_current(engine: Path, onnx: Path, running: Target) -> bool:
    """Whether `engine` was built from this `onnx` (sha256) for this TensorRT and GPU, every check made (the cache
    key jetson-inference uses); False when it or its sidecar is missing or unreadable."""
    try:
        sidecar = read_sidecar(engine)
    except ValueError:
        return False
    problems, warnings = mismatches(sidecar.target, running)
    return engine.is_file() and not problems and not warnings and sidecar.onnx_sha256 == file_sha256(onnx)


# ------------------------------------------------------------------------------------------------ building


def file_sha256(path: Path) -> str:  # own copy (dualpath.files has one): this file also runs alone
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_metadata(onnx_path: Path, metadata_json: Path | None = None) -> dict[str, str]:
    """The export's metadata pairs: `metadata_json`, else metadata.json beside the ONNX, else the ONNX's own
    metadata_props (read with onnx or onnxruntime, whichever is installed)."""
    beside = onnx_path.with_name("metadata.json")
    path = metadata_json or (beside if beside.is_file() else None)
    if path is not None:
        return json.loads(Path(path).read_text())
    try:
        import onnx

        return {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    except ImportError:
        pass
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except ImportError:
        raise ValueError(f"reading {onnx_path.name}'s labels needs its metadata.json beside it, or `pip install onnx`")


def engine_precision(qdq: bool, fp16: bool) -> str:
    """The precision an engine runs in, as the model metadata names it: "int8-qdq" (+fp16 where TensorRT may run the
    unquantized layers in FP16), "fp16" or "fp32"."""
    if qdq:
        return "int8-qdq+fp16" if fp16 else "int8-qdq"
    return "fp16" if fp16 else "fp32"


def network_precisions(trt, network) -> tuple[bool, bool]:
    """(Q/DQ layers present: an explicitly quantized INT8 network; FP16 tensors present: an FP16 ONNX)."""
    qdq_types = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    qdq = half = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        qdq = qdq or layer.type in qdq_types
        half = half or any(layer.get_output(j).dtype == trt.DataType.HALF for j in range(layer.num_outputs))
    return qdq, half


def build(onnx_path: Path, out: Path, metadata: dict[str, str], max_batch: int = 32, fp16: bool = True,
          workspace_mib: int = 1024, timing_cache: Path | None = None) -> Sidecar:
    """Build `out` (and its sidecar) from `onnx_path` on this machine's GPU; RuntimeError when TensorRT cannot."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = int(trt.__version__.split(".")[0]) >= 11
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}:\n{errors}")
    qdq, half = network_precisions(trt, network)
    fp16 = fp16 and not strongly_typed
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if qdq and not strongly_typed:
        config.set_flag(trt.BuilderFlag.INT8)  # honour the graph's Q/DQ nodes
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    size = int(json.loads(metadata["image_size"]))
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT, (1, 3, size, size), (1, 3, size, size), (max_batch, 3, size, size))
    config.add_optimization_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineBuildFailed("TensorRT failed to build the engine (see its log above)")
    _atomic_write(out, bytes(engine))
    if timing_cache is not None:
        _atomic_write(timing_cache, bytes(config.get_timing_cache().serialize()))
    sidecar = Sidecar(
        # The engine's own precision, not the FP32 metadata.json's it was given.
        metadata=dict(metadata) | {"precision": json.dumps(engine_precision(qdq, half or fp16))},
        target=here(trt.__version__), onnx=onnx_path.name, onnx_sha256=file_sha256(onnx_path),
        builder="build_tensorrt_engine.py",
        facts={"max_batch": max_batch, "fp16": fp16, "strongly_typed": strongly_typed,
               "engine_sha256": file_sha256(out)},
    )
    write_sidecar(out, sidecar)
    return sidecar


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class EngineBuildFailed(RuntimeError):
    """TensorRT read the model but built no engine: a failed run (exit 1, as trtexec's failure in build_engine.sh)."""


def command(onnx_name: str, engine_name: str, max_batch: int = 32) -> str:
    return (f"python3 build_tensorrt_engine.py {onnx_name} --metadata metadata.json --out {engine_name} "
            f"--max-batch {max_batch} --timing-cache tensorrt.cache")


def trtexec_args(onnx: str, engine: str, max_batch: int, *, qdq: bool, image_size: int, tensorrt_major: int = 10,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """trtexec's arguments (without the program) for the engine build() makes: batch 1 to `max_batch`, optimised for
    1 (the camera's), then `extra` (a timing cache, a workspace). One command line for the export's script (its
    commented-out equivalent) and jetson/build_engine.sh (through jetson/sidecar.py trtexec).

    Precision: TensorRT 10 (JetPack 6) takes --int8 to honour the Q/DQ nodes and --fp16 for the layers left float
    (--int8 only for a QDQ model: on a network without Q/DQ nodes trtexec would make up INT8 ranges); TensorRT 11
    (JetPack 7) has no precision flags, its networks are strongly typed: the ONNX alone says what runs in INT8."""
    precision = [] if tensorrt_major >= 11 else ["--int8", "--fp16"] if qdq else ["--fp16"]
    shape = [f"{INPUT}:{batch}x3x{image_size}x{image_size}" for batch in (1, 1, max_batch)]
    return [f"--onnx={onnx}", f"--saveEngine={engine}", *precision, f"--minShapes={shape[0]}",
            f"--optShapes={shape[1]}", f"--maxShapes={shape[2]}", *extra]


def main(argv: list[str] | None = None) -> int:
    """Exit codes as dualpath.exitcodes' (0 built, 1 TensorRT built no engine, 2 bad input or environment), spelled
    out: this file ships alone."""
    p = argparse.ArgumentParser(description="Build a TensorRT engine from a QDQ INT8 (or FP16) ONNX on this device.")
    p.add_argument("onnx", type=Path)
    p.add_argument("--out", type=Path, required=True, help="engine file (.engine)")
    p.add_argument("--metadata", type=Path, help="metadata.json from the export (default: the one beside the ONNX, "
                   "else the ONNX's own metadata)")
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
    try:
        sidecar = build(args.onnx, args.out, model_metadata(args.onnx, args.metadata), args.max_batch,
                        not args.no_fp16, timing_cache=args.timing_cache)
    except EngineBuildFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = sidecar.target
    print(f"built {args.out} with TensorRT {t.tensorrt_version} on {t.gpu_name or 'an unnamed GPU'} "
          f"(compute capability {t.compute_capability or 'unknown'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
