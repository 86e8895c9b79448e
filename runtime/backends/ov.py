"""OpenVINO backend: IR (.xml + .bin) FP32 or NNCF INT8, or an .onnx file read directly."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.base import Backend, BackendError

RT_INFO_ROOT = "dualpath"  # rt_info section where the exporter stores the metadata pairs


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None, device: str = "CPU",
                 hint: str = "LATENCY") -> None:
        """device: an OpenVINO device name ("CPU", "GPU", "AUTO"); hint: "LATENCY" | "THROUGHPUT"."""
        super().__init__(path)
        import openvino as ov

        core = ov.Core()
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # openvino raises RuntimeError subclasses with the parser's message
            raise BackendError(f"openvino cannot read {self.path}: {e}") from None
        self.metadata = self._read_metadata(onnx_props(self.path) if self.path.suffix == ".onnx" else rt_info_props(model))
        config = {"PERFORMANCE_HINT": hint.upper()}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, device.upper(), config)
        except Exception as e:
            raise BackendError(f"openvino cannot compile {self.path} for {device}: {e}") from None
        self.request = self.compiled.create_infer_request()
        self._outputs = [(o, o.get_any_name()) for o in self.compiled.outputs]

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = self._check_feed(feed)
        results = self.request.infer({self.metadata.input_name: x})
        # Copies: the request reuses its output buffers on the next call.
        return {name: np.array(results[port]) for port, name in self._outputs}

    def close(self) -> None:
        self.request = None
        self.compiled = None


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
