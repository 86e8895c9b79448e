"""TensorRT backend: a serialized engine (.engine / .plan) built on this device from the QDQ ONNX.

The engine's sidecar (runtime.backends.trt_engine) gives the model metadata and what the engine is tied to; an engine
built for another TensorRT or GPU is refused with the command that rebuilds it, before TensorRT sees it. Device memory
goes through cuda-python (`cuda.bindings`). Tested with fake tensorrt and cuda modules
(tests/runtime/test_trt_backend.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from runtime.backends import trt_engine
from runtime.backends.base import Backend, BackendError

log = logging.getLogger("runtime")


class TensorRTBackend(Backend):
    name = "tensorrt"

    def __init__(self, path: Path, device: int = 0) -> None:
        super().__init__(path)
        import tensorrt as trt

        sidecar = trt_engine.read_sidecar(self.path, BackendError)
        self.metadata = self._read_metadata(sidecar.metadata)
        problems, warnings = trt_engine.mismatches(sidecar.target, trt_engine.here(trt.__version__, device))
        for warning in warnings:
            log.warning("%s: %s", self.path.name, warning)
        if problems:
            raise BackendError(trt_engine.refusal_message(self.path, problems))
        self._cuda = _cudart()
        _check(self._cuda.cudaSetDevice(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT cannot deserialize {self.path} (other GPU or corrupt file); rebuild it here")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self._cuda.cudaStreamCreate())
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)

    def _device_buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self._cuda.cudaFree(ptr))
            ptr = _check(self._cuda.cudaMalloc(nbytes))
            self._buffers[name] = (ptr, nbytes)
        return ptr

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, kind = self._cuda, self._cuda.cudaMemcpyKind
        x = self._check_feed(feed)
        name = self.metadata.input_name
        self.context.set_input_shape(name, x.shape)
        src = self._device_buffer(name, x.nbytes)
        _check(cuda.cudaMemcpyAsync(src, x.ctypes.data, x.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        self.context.set_tensor_address(name, src)
        outputs = {}
        for out in self.metadata.output_names:
            host = np.empty(tuple(self.context.get_tensor_shape(out)), np.float32)
            outputs[out] = host
            self.context.set_tensor_address(out, self._device_buffer(out, host.nbytes))
        if not self.context.execute_async_v3(self.stream):
            raise BackendError("TensorRT execution failed (see the TensorRT log above)")
        for out, host in outputs.items():
            ptr = self._buffers[out][0]
            _check(cuda.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind.cudaMemcpyDeviceToHost, self.stream))
        _check(cuda.cudaStreamSynchronize(self.stream))
        return outputs

    def close(self) -> None:
        """Free the device buffers and the stream (once; closing again does nothing)."""
        for ptr, _ in self._buffers.values():
            self._cuda.cudaFree(ptr)
        self._buffers.clear()
        if self.stream is not None:
            self._cuda.cudaStreamDestroy(self.stream)
            self.stream = None
        self.context = None
        self.engine = None


# JetPack 6.x ships CUDA 12; cuda-python's major version follows CUDA's (13.x is built for CUDA 13). The Jetson guide
# (README, jetson/build_engine.sh) installs the same pin.
CUDA_PYTHON_PIN = "cuda-python>=12,<13"


def _cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6
        except ImportError:
            raise BackendError("the TensorRT backend needs cuda-python for device memory: pip install "
                               f"'{CUDA_PYTHON_PIN}' (CUDA 12, as JetPack 6 ships; the major version must be your "
                               "CUDA's, and a plain `pip install cuda-python` brings the CUDA 13 build)") from None
    return runtime


def _check(result):
    """cuda-python returns (error, value...) tuples; raise on an error, return the value."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else (values or None)
