"""What the steps of one export share (export.pipeline runs them): the checkpoint's model, the manifest being built,
the calibration scenes (made once, on first use) and QAT's tuned weights, and the questions every step asks of the
config (which QDQ variants it writes, which INT8 artifacts accuracy control tunes, which get drift reports)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.artifacts import FORMATS, FP32_ONNX, INT8_XML, RANGES, SHARED_RANGES, Artifact, int8_onnx_name


class ExportFailed(Exception):
    """A verdict on the run (exit 1): the artifacts it built are not what the checkpoint computes."""


@dataclasses.dataclass
class Context:
    """One export's shared state; a step reads it and adds its manifest sections (its recipes it returns)."""

    model: Any  # the checkpoint's torch model
    ckpt: dict
    log: Callable[[str], None]
    budgets: dict  # metric -> runtime.drift.Budget, docs/design.md's defaults unless the config names others
    baseline: dict | None = None  # artifact -> its drift.json in the accepted export (--baseline)
    manifest: dict = dataclasses.field(default_factory=dict)
    batches: Any = None  # calibration.CalibrationBatches, made by calibration()
    qat: Any = None  # export.qat_step.QatSource, made by the INT8 tuning step (export.control_step)
    ranges_written: bool = False

    @property
    def recipes(self) -> dict[str, Any]:
        return self.manifest.setdefault("recipes", {})

    def calibration(self, config):
        """The calibration batches, the scene set built on first use (and recorded in the manifest)."""
        if self.batches is None:
            self.batches, self.manifest["calibration"] = calibration_batches(config)
        return self.batches

    def write_ranges(self, config) -> None:
        """The calibration's activation ranges (ONNX Runtime's, per tensor and per concat group), once per export:
        every QDQ model, and accuracy control's layer ranking, is quantized from them."""
        from export.atomic import atomic_path
        from export.quantize_onnx import calibrate

        if self.ranges_written:
            return
        with atomic_path(config.out / RANGES) as raw, atomic_path(config.out / SHARED_RANGES) as shared:
            calibrate(config.out / FP32_ONNX, self.calibration(config), config.calib_method, raw, shared)
        self.ranges_written = True

    def close(self) -> None:
        if self.qat is not None:
            self.qat.close()


def step_module(fmt: str):
    """The module of format `fmt`'s step (export.artifacts.FORMATS names it), imported when first used."""
    import importlib

    return importlib.import_module(FORMATS[fmt].step)


def calibration_batches(config):
    from calibration import CalibrationBatches, build_calibration_set

    calib = config.calibration
    ds = build_calibration_set(calib, config.data_root / calib.folder_name(), workers=config.workers)
    info = {"seed": ds.seed, "n": len(ds), "path": str(ds.path), "manifest_sha256": ds.manifest["files"]["noisy"]["sha256"],
            "method": config.calib_method}
    return CalibrationBatches.from_dataset(ds, calib.batch_size), info


def parity_images(n: int) -> np.ndarray:
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range
    from runtime.drift.sets import DRIFT_SEED

    return render_range(SceneConfig(), DRIFT_SEED, 0, n)["noisy"]


def qdq_variants(config) -> list[str]:
    """The QDQ variants this export writes (--qdq-variants' order; export.artifacts decides which)."""
    return [v for v in config.qdq_variants if int8_onnx_name(v) in config.artifacts]


def qdq_source_for_openvino(config) -> str:
    """The QDQ model the OpenVINO INT8 IR is converted from (--ov-int8 qdq): u8, else s8; '' for NNCF's own."""
    if config.ov_int8 != "qdq":
        return ""
    written = qdq_variants(config)
    return next((int8_onnx_name(v) for v in ("u8", "s8") if v in written), "")


def tuned(config) -> list[Artifact]:
    """The INT8 artifacts QAT and accuracy control rebuild: the `controlled` ones, but an OpenVINO IR converted from
    a QDQ model (--ov-int8 qdq), which follows that model."""
    return [a for a in config.artifacts.values() if a.controlled
            and not (a.name == INT8_XML and qdq_source_for_openvino(config))]


def drift_pairs(config) -> dict[str, str]:
    """Every INT8 / FP16 artifact this export wrote -> its FP32 reference (export.artifacts; an engine only where
    TensorRT built it)."""
    return {a.name: a.reference for a in config.artifacts.values() if a.reference and (config.out / a.name).is_file()}


def artifact_graph(path: Path) -> dict[str, Any]:
    """The recipe's graph counts, read back from the file on disk."""
    if path.suffix == ".xml":
        import openvino as ov

        from export.openvino_export import ir_summary

        return ir_summary(ov.Core().read_model(str(path)))
    import onnx

    from export.quantize_onnx import qdq_summary

    return qdq_summary(onnx.load(str(path)))
