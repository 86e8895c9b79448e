"""ONNX Runtime backend: FP32 or QDQ INT8 .onnx files, on the CPU by default."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.backends.runner import ThreadRunner


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None,
                 device: str = "auto") -> None:
        """threads: intra-op threads (None: ONNX Runtime's choice). providers override device ("auto" | "cpu" |
        "cuda"); "auto" takes the best provider this onnxruntime build has (CUDA where present, else the CPU)."""
        super().__init__(path)
        from dualpath.telemetry import telemetry_off

        telemetry_off()  # ORT_DISABLE_TELEMETRY=1 before onnxruntime is imported, else it looks up a Microsoft host
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        installed = ort.get_available_providers()
        for provider in providers or ():
            if provider not in installed:
                raise BackendError(f"this onnxruntime ({ort.__version__}) has no execution provider {provider!r}; it "
                                   f"has {', '.join(installed)} (CUDAExecutionProvider comes with onnxruntime-gpu)")
        providers = list(providers or _providers(device, installed))
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / NoSuchFile types
            raise BackendError(f"onnxruntime cannot load {self.path}: {e}") from None
        self.metadata = self._read_metadata(dict(self.session.get_modelmeta().custom_metadata_map))
        self.providers = self.session.get_providers()
        if self.providers[0] == "CPUExecutionProvider":
            self._warn_if_int8_may_saturate()
        self._outputs = [o.name for o in self.session.get_outputs()]
        self._check_signature({i.name: _shape(i) for i in self.session.get_inputs()},
                              {o.name: _shape(o) for o in self.session.get_outputs()})

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = self._check_feed(feed)
        values = self.session.run(self._outputs, {self.metadata.input_name: x})
        return dict(zip(self._outputs, values))

    def runner(self, requests: int | None = None, batch: int = 1) -> ThreadRunner:
        """`requests` threads (None: two per CPU core, one running while the next is handed its frame, as OpenVINO's
        REQUESTS_PER_OPTIMAL) each calling run on the one session: ONNX Runtime releases the
        GIL in run and allows concurrent runs. Chosen over InferenceSession.run_async, which schedules every request
        on the session's one intra-op thread pool and refuses a single-threaded session (ONNX Runtime 1.32: "intra op
        thread pool must have at least one thread for RunAsync"), where throughput wants
        independent single-threaded requests (the session is opened with threads=1 for that in throughput mode)."""
        n = int(requests or 2 * (os.cpu_count() or 1))
        name, outputs = self.metadata.input_name, self._outputs

        def run(x: np.ndarray) -> dict[str, np.ndarray]:
            return dict(zip(outputs, self.session.run(outputs, {name: x})))

        return ThreadRunner([run] * n, batch, f"ONNX Runtime, {n} threads, {self.providers[0]}")

    def close(self) -> None:
        self.session = None


def _providers(device: str, installed: Sequence[str]) -> list[str]:
    if device == "auto":
        # TensorRT's execution provider is left out on purpose: it builds engines at session start (minutes on a
        # Jetson); for TensorRT, build an engine once with jetson/build_engine.sh and run that.
        return _providers("cuda" if "CUDAExecutionProvider" in installed else "cpu", installed)
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in installed:
            raise BackendError(
                "device 'cuda' asked but this onnxruntime has no CUDAExecutionProvider: install onnxruntime-gpu "
                "(on a Jetson, the aarch64 GPU build) or use device='cpu'"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise BackendError(f"unknown device {device!r} for onnxruntime; use 'auto', 'cpu' or 'cuda'")


def _shape(arg) -> tuple | None:
    """A NodeArg's declared shape (ints, names or None per dimension); None where the file declares none."""
    return None if arg.shape is None else tuple(arg.shape)
