"""TensorRT backend: a serialized engine (.engine / .plan) built on this device from the QDQ ONNX.

The engine's sidecar (runtime.backends.trt_engine) gives the model metadata and what the engine is tied to; an engine
built for another TensorRT or GPU is refused with the command that rebuilds it, before TensorRT sees it. Device memory
goes through cuda-python (`cuda.bindings`). Tested with fake tensorrt and cuda modules
(tests/runtime/test_trt_backend.py).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from runtime.backends import trt_engine
from runtime.backends.base import Backend, BackendError
from runtime.backends.runner import ThreadRunner

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
        self._cuda, self._device = _cudart(), device
        _check(self._cuda.cudaSetDevice(device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self._logger).deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendError(f"TensorRT cannot deserialize {self.path} (other GPU or corrupt file); rebuild it here")
        self._slots = [_Slot(self)]  # slot 0 serves infer(); runner() adds one per further request
        self.context, self.stream = self._slots[0].context, self._slots[0].stream

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._slots[0].infer(self._check_feed(feed))

    def runner(self, requests: int | None = None, batch: int = 1) -> ThreadRunner:
        """`requests` (None: DEFAULT_REQUESTS) execution contexts, each with its own CUDA stream and device buffers,
        each driven by its own thread: while one thread waits for its stream (cuda-python and TensorRT release the
        GIL), the others copy and enqueue, so copies and kernels of several frames overlap on the GPU."""
        n = int(requests or DEFAULT_REQUESTS)
        while len(self._slots) < n:
            self._slots.append(_Slot(self))
        return ThreadRunner([self._on_device(slot) for slot in self._slots[:n]], batch,
                            f"TensorRT, {n} execution contexts on {n} CUDA streams")

    def _on_device(self, slot: "_Slot"):
        """slot.infer, selecting this backend's GPU first in the thread that calls it (CUDA's current device is per
        thread). Slot 0 also serves infer(): a runner's requests and infer() are not meant to run at once."""
        ready = threading.local()

        def infer(x: np.ndarray) -> dict[str, np.ndarray]:
            if not getattr(ready, "device", False):
                _check(self._cuda.cudaSetDevice(self._device))
                ready.device = True
            return slot.infer(x)

        return infer

    def close(self) -> None:
        """Free the device buffers and the streams (once; closing again does nothing)."""
        for slot in self._slots:
            slot.close()
        self._slots = []
        self.stream = self.context = None
        self.engine = None


DEFAULT_REQUESTS = 2  # contexts in flight when --requests is not given: one copying / enqueuing while one computes


class _Slot:
    """One request: an execution context, its CUDA stream and its device buffers (grown as batches need)."""

    def __init__(self, backend: TensorRTBackend) -> None:
        self._cuda, self._metadata = backend._cuda, backend.metadata
        self.context = backend.engine.create_execution_context()
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

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """x: a checked float32 NCHW batch. Copy in, execute, copy out on this slot's stream, then wait for it."""
        cuda, kind = self._cuda, self._cuda.cudaMemcpyKind
        x = np.ascontiguousarray(x, dtype=np.float32)
        name = self._metadata.input_name
        self.context.set_input_shape(name, x.shape)
        src = self._device_buffer(name, x.nbytes)
        _check(cuda.cudaMemcpyAsync(src, x.ctypes.data, x.nbytes, kind.cudaMemcpyHostToDevice, self.stream))
        self.context.set_tensor_address(name, src)
        outputs = {}
        for out in self._metadata.output_names:
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
        for ptr, _ in self._buffers.values():
            self._cuda.cudaFree(ptr)
        self._buffers.clear()
        if self.stream is not None:
            self._cuda.cudaStreamDestroy(self.stream)
            self.stream = None
        self.context = None


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
