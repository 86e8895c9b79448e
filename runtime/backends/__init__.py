"""Inference backends behind one small interface, each in its own module, imported only when used.

    be = load_backend("model_int8.xml")          # or backend="onnxruntime" | "openvino" | "tensorrt"
    be.metadata                                  # ModelMetadata read from the artifact itself
    be.infer({"image": x})                       # x float32 (N, 3, 64, 64) -> {"probs": (N, 20), "recon": (N, 3, 64, 64)}
    be.close()                                   # or `with load_backend(...) as be:`
"""
from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from runtime.backends.base import Backend, BackendError
from runtime.backends.metadata import MetadataError, ModelMetadata

# name -> (module, class, the package it needs, how to install it)
BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "onnxruntime": ("runtime.backends.ort", "OrtBackend", "onnxruntime", "pip install onnxruntime"),
    "openvino": ("runtime.backends.ov", "OpenVinoBackend", "openvino", "pip install openvino"),
    "tensorrt": (
        "runtime.backends.trt", "TensorRTBackend", "tensorrt",
        "use JetPack's TensorRT on a Jetson with pip install 'cuda-python>=12,<13' (CUDA 12, JetPack 6), or pip install "
        "tensorrt and the cuda-python of your CUDA's major version on an x86 machine with an NVIDIA GPU",
    ),
}
# Which backends can run which file type, in order of preference for backend="auto".
SUFFIXES: dict[str, tuple[str, ...]] = {
    ".onnx": ("onnxruntime", "openvino"),
    ".xml": ("openvino",),
    ".engine": ("tensorrt",),
    ".plan": ("tensorrt",),
}

__all__ = ["BACKENDS", "Backend", "BackendError", "MetadataError", "ModelMetadata", "available", "load_backend",
           "model_files"]


def available(name: str) -> bool:
    """Whether the package behind backend `name` is installed (without importing it)."""
    return importlib.util.find_spec(BACKENDS[name][2]) is not None


def resolve(path: Path, backend: str = "auto") -> str:
    """The backend name that will run `path`; BackendError saying what to install or pass otherwise."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise BackendError(
            f"{path}: unknown model file type {suffix or '(none)'!r}; expected one of {', '.join(SUFFIXES)} "
            "(written by `python -m export`)"
        )
    if backend != "auto":
        if backend not in BACKENDS:
            raise BackendError(f"unknown backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
        if backend not in SUFFIXES[suffix]:
            raise BackendError(f"the {backend} backend cannot run {suffix} files; it runs {_suffixes_of(backend)}")
        if not available(backend):
            raise BackendError(f"the {backend} backend is not installed: {BACKENDS[backend][3]}")
        return backend
    for name in SUFFIXES[suffix]:
        if available(name):
            return name
    hints = "; or ".join(BACKENDS[n][3] for n in SUFFIXES[suffix])
    raise BackendError(f"no installed backend runs {suffix} files: {hints}")


def _suffixes_of(backend: str) -> str:
    return ", ".join(s for s, names in SUFFIXES.items() if backend in names)


def model_files(path: str | Path) -> list[Path]:
    """Every file loading `path` reads: the model, an OpenVINO IR's weights (.bin), a TensorRT engine's sidecar
    (model.engine.json, or model.json for hand-built engines). For the check that no output is written over one."""
    path = Path(path)
    suffix = path.suffix.lower()
    files = [path]
    if suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    elif suffix in SUFFIXES and "tensorrt" in SUFFIXES[suffix]:
        files += [path.with_name(path.name + ".json"), path.with_suffix(".json")]
    return files


def load_backend(path: str | Path, backend: str = "auto", **options: Any) -> Backend:
    """Open `path` with `backend` ("auto" picks by file type and what is installed).

    options go to the backend (threads=, device=, providers= ...); each backend documents its own.
    """
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"no model file at {path}; export one with `python -m export --checkpoint ... --out ...`")
    name = resolve(path, backend)
    module_name, class_name, _, _ = BACKENDS[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(path, **options)
