"""OpenVINO backend: IR (.xml + .bin) FP32 or NNCF INT8, or an .onnx file read directly."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendError
from runtime.backends.runner import Done, Runner

RT_INFO_ROOT = "dualpath"  # rt_info section where the exporter stores the metadata pairs
MAX_STATIC_BATCHES = 4  # batch sizes compiled with a fixed shape before falling back to the dynamic-batch model


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None, device: str = "CPU",
                 hint: str = "LATENCY", static_batch: bool = True, precision: str = "auto") -> None:
        """device: an OpenVINO device name ("CPU", "GPU", "NPU", "AUTO", "GPU.1", "AUTO:GPU,CPU"...), checked against
        the devices this machine has; hint: "LATENCY" | "THROUGHPUT" (runner(): AsyncInferQueue, several requests).

        precision: the plugin's inference precision. "auto" runs an artifact at the precision its metadata asks
        for on this device (inference_precision: {"CPU": "f32", "GPU": "f16"} for the FP16 IR, whose drift budget
        bf16 does not hold), an FP32 artifact in f32 (OpenVINO's CPU plugin otherwise runs it in bf16 on CPUs with
        AVX-512 BF16 or AMX, measured on this project's dev box, and GPUs in f16) and every other artifact at the
        device's default; "f32" | "bf16" | "f16" ask for one, "default" leaves it to the device.
        `inference_precision` says what the compiled model uses.

        static_batch: compile the model once per batch size seen, with that batch size fixed (up to
        MAX_STATIC_BATCHES sizes, then the dynamic-batch model). OpenVINO's CPU plugin runs a static shape
        faster than the same model with a dynamic batch (measured ~20% at batch 1 on a 2-core CPU); a camera
        loop only ever sends batch 1.
        """
        super().__init__(path)
        import openvino as ov

        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as e:  # openvino raises RuntimeError subclasses with the parser's message
            raise BackendError(f"openvino cannot read {self.path}: {e}") from None
        self.metadata = self._read_metadata(
            onnx_props(self.path) if self.path.suffix == ".onnx" else rt_info_props(self._model)
        )
        self._device = device.upper()
        _check_device(self._device, self._core.available_devices)
        if self._device.startswith("CPU"):
            self._warn_if_int8_may_saturate()
        self._config = {"PERFORMANCE_HINT": hint.upper()}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        asked = inference_precision(precision, self.metadata.extra.get("precision"), self._device,
                                    self.metadata.extra.get("inference_precision"))
        if asked:
            self._config["INFERENCE_PRECISION_HINT"] = asked
        shape = self._model.inputs[0].get_partial_shape()
        self._static = static_batch and shape.rank.is_static and shape[0].is_dynamic
        self._requests: dict[int | None, tuple] = {}  # batch size (None: as the file says) -> (compiled, request)
        compiled, _ = self._compiled_for(1 if self._static else None)  # compile errors surface at load time
        self._output_names = [o.get_any_name() for o in compiled.outputs]
        try:
            self.inference_precision = str(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())
        except Exception:  # devices without the property (AUTO, some plugins)
            self.inference_precision = None
        self._check_signature({p.get_any_name(): _dims(p) for p in self._model.inputs},
                              {p.get_any_name(): _dims(p) for p in self._model.outputs})

    def _compiled_for(self, batch: int | None) -> tuple:
        if batch is not None and batch not in self._requests and len(self._requests) >= MAX_STATIC_BATCHES:
            batch = None  # many different sizes (a data set's tail batches...): one dynamic model serves them all
        if batch not in self._requests:
            model = self._model
            if batch is not None:
                model = self._model.clone()
                model.reshape({model.inputs[0]: [batch, *self._model.inputs[0].get_partial_shape()[1:]]})
            try:
                compiled = self._core.compile_model(model, self._device, self._config)
            except Exception as e:
                raise BackendError(f"openvino cannot compile {self.path} for {self._device}: {e}") from None
            self._requests[batch] = (compiled, compiled.create_infer_request())
        return self._requests[batch]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = self._check_feed(feed)
        compiled, request = self._compiled_for(x.shape[0] if self._static else None)
        results = request.infer({0: x})
        # Copies: the request reuses its output buffers on the next call.
        return {name: np.array(results[port]) for port, name in zip(compiled.outputs, self._output_names)}

    def runner(self, requests: int | None = None, batch: int = 1) -> "AsyncQueueRunner":
        """An AsyncInferQueue of `requests` requests on the model compiled for `batch` frames, with this backend's
        hint. None: REQUESTS_PER_OPTIMAL x the compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS (benchmark_app takes
        the optimal number itself; see REQUESTS_PER_OPTIMAL for why a Python loop wants twice that)."""
        compiled, _ = self._compiled_for(batch if self._static else None)
        return AsyncQueueRunner(compiled, self._output_names, requests, batch, self._config["PERFORMANCE_HINT"])

    def close(self) -> None:
        self._requests.clear()


# OPTIMAL_NUMBER_OF_INFER_REQUESTS keeps each stream busy when the next request is started the moment one ends (C++,
# benchmark_app). Here a request's end goes through its Python callback and the main thread before the next frame is
# started, and a stream would wait that long: one more request queued behind each keeps it busy. Measured on the
# 2-core dev box, shared (docs/runtime.md): 2 -> 4 requests gave +7 to +18 % frames/s end to end on the demo
# model at batch 1 (medians of 5 interleaved runs), and +17 % fed from Python without reading frames.
REQUESTS_PER_OPTIMAL = 2


class AsyncQueueRunner(Runner):
    """OpenVINO's AsyncInferQueue: start() hands the input to the next idle request; OpenVINO calls back from its
    own thread when the request is done, where the outputs are copied (the request reuses its buffers)."""

    def __init__(self, compiled, output_names: list[str], requests: int | None, batch: int, hint: str) -> None:
        import openvino as ov

        self.requests = int(requests or REQUESTS_PER_OPTIMAL * compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.batch, self._names = batch, output_names
        self.description = f"OpenVINO AsyncInferQueue, {hint} hint"
        self._queue = ov.AsyncInferQueue(compiled, self.requests)
        self._queue.set_callback(self._finished)

    def _finished(self, request, done: Done) -> None:
        try:
            out = {name: np.array(request.get_output_tensor(i).data) for i, name in enumerate(self._names)}
        except Exception as e:  # noqa: BLE001 - a failed request: the run ends with it
            out = BackendError(f"OpenVINO inference failed: {e}")
        done(out)

    def start(self, x: np.ndarray, done: Done) -> None:
        try:
            self._queue.start_async({0: x}, done)
        except Exception as e:  # an earlier request's failure surfaces here
            raise BackendError(f"OpenVINO inference failed: {e}") from None

    def close(self) -> None:
        try:
            self._queue.wait_all()
        except Exception:  # noqa: BLE001 - its error was handed to the request's done already
            pass


DEVICE_FAMILIES = ("CPU", "GPU", "NPU", "AUTO", "MULTI", "HETERO")


def _check_device(device: str, available: list[str]) -> None:
    """BackendError naming the devices this machine has, for a device it has not (virtual devices, AUTO / MULTI /
    HETERO, pick among those and are left to OpenVINO)."""
    family = device.split(":")[0].split(".")[0]
    if family not in DEVICE_FAMILIES:
        raise BackendError(f"unknown OpenVINO device {device!r}; choose CPU, GPU, NPU or AUTO (this machine has "
                           f"{', '.join(available) or 'none'})")
    if family in ("AUTO", "MULTI", "HETERO"):
        return
    if not any(a == device or (device == family and a.split(".")[0] == family) for a in available):
        raise BackendError(f"OpenVINO has no {device} device here (this machine has {', '.join(available) or 'none'}): "
                           "install its driver (GPU: intel-opencl-icd; NPU: the NPU driver) or pass --device CPU / AUTO")


def _dims(port) -> tuple:
    """A port's declared shape: ints, None for dynamic dimensions; None where even the rank is dynamic."""
    shape = port.get_partial_shape()
    if shape.rank.is_dynamic:
        return None
    return tuple(d.get_length() if d.is_static else None for d in shape)


PRECISIONS = ("auto", "default", "f32", "bf16", "f16")


def inference_precision(asked: str, artifact_precision: str | None, device: str,
                        recorded: object = None) -> str | None:
    """The INFERENCE_PRECISION_HINT to compile with (None: the device's default); see OpenVinoBackend. `recorded`:
    the artifact's metadata inference_precision ({device: precision}), what its export measured holds the budget."""
    if asked not in PRECISIONS:
        raise BackendError(f"unknown OpenVINO precision {asked!r}; choose one of {', '.join(PRECISIONS)}")
    if asked == "default" or device not in ("CPU", "GPU"):  # AUTO / MULTI take no such property
        return None
    if asked == "auto":
        if isinstance(recorded, dict) and recorded.get(device) in PRECISIONS[2:]:
            return recorded[device]
        return "f32" if artifact_precision == "fp32" else None
    return asked


def rt_info_props(model) -> dict[str, str]:
    """The metadata pairs the exporter stored under rt_info["dualpath"] ({} when there are none)."""
    if RT_INFO_ROOT not in model.get_rt_info():
        return {}
    keys = model.get_rt_info([RT_INFO_ROOT]).astype(dict)
    return {key: model.get_rt_info([RT_INFO_ROOT, key]).astype(str) for key in keys}


def onnx_props(path: Path) -> dict[str, str]:
    """OpenVINO drops an ONNX file's metadata_props when it reads it, so take them from the file itself."""
    try:
        import onnx
    except ImportError:
        raise BackendError(
            f"reading the metadata of {path} with OpenVINO needs the onnx package (pip install onnx), "
            "or use the OpenVINO IR (.xml) that `python -m export` writes"
        ) from None
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def write_rt_info(model, props: dict[str, str]) -> None:
    for key, value in props.items():
        model.set_rt_info(value, [RT_INFO_ROOT, key])
