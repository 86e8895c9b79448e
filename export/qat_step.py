"""The export's QAT step: one quantization-aware fine-tuning per export, made on first use, that every INT8 artifact
can be rebuilt from (export.qat does the tuning).

It mirrors the s8 QDQ model (TensorRT's source, the strictest recipe: symmetric activations and one scale per
concatenation group) when the export writes it, else the first QDQ variant it writes. The tuned FP32 model stays in a
temporary folder: the QDQ models are rebuilt from it with the export's own calibration ranges and recipe (so their
graphs are the post-training ones with other weights), the OpenVINO INT8 model by NNCF from it.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from export.qat import DEFAULT_MINUTES, OBJECTIVES, QAT_MODES  # noqa: F401 (the export's flags read them here)

QAT_OBJECTIVES = OBJECTIVES


class QatSource:
    def __init__(self, config, model, ckpt: dict, log: Callable[[str], None], *, variants: list[str], images,
                 quantize: Callable[[str, list[str], Path], Path]) -> None:
        """variants: the QDQ variants the export writes; images: uint8 scenes for the mirror's parity check;
        quantize(artifact, kept, weights) -> its path: the export's INT8 step for that artifact (export.control_step),
        from the FP32 ONNX `weights` with `kept` layers also in float."""
        self.config, self.model, self.ckpt, self.log = config, model, ckpt, log
        self.variants, self.images, self.quantize = list(variants), images, quantize
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.path: Path | None = None  # the tuned FP32 ONNX
        self.tuned = None
        self.info: dict[str, Any] | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "QatSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def mirrored_variant(self) -> str:
        return "s8" if "s8" in self.variants else self.variants[0] if self.variants else ""

    def get(self) -> Path:
        """The tuned FP32 ONNX, tuned now if it was not yet."""
        if self.path is not None:
            return self.path
        from export import qat
        from export.artifacts import FP32_ONNX, int8_onnx_name

        variant = self.mirrored_variant()
        if not variant:
            raise ValueError("QAT mirrors a QDQ model and this export writes none; keep 'onnx' in --backends")
        self._tmp = tempfile.TemporaryDirectory(prefix="dualpath-qat-")
        path = Path(self._tmp.name) / "model_fp32_qat.onnx"
        cfg = qat.QATConfig(minutes=self.config.qat_minutes, threads=self.config.threads or 0,
                            objective=self.config.qat_objective, pool=self.config.qat_scenes,
                            **self.config.qat_options)
        self.tuned, self.info = qat.tune(self.model, self.ckpt, self.config.out / int8_onnx_name(variant),
                                         self.config.out / FP32_ONNX, path, cfg, self.images,
                                         self.config.opset, self.config.exporter, self.config.workers, self.log)
        self.path = path
        return path

    def rebuild(self, name: str, kept: list[str]) -> Path:
        """Artifact `name` from the tuned weights (its recipe, `kept` layers also in float); returns its path."""
        from export import qat
        from export.artifacts import int8_onnx_name

        out = self.quantize(name, kept, self.get())
        if name == int8_onnx_name(self.mirrored_variant()) and not kept:
            self.info["mirror_parity_after"] = qat.check_mirror(self.tuned, out, self.images)
        return out

    def record(self) -> dict[str, Any]:
        """What the manifest says of the tuning (scenes, steps, time, loss)."""
        return dict(self.info or {})


def rebuild_all(qat_source: QatSource, artifacts, recipes: dict[str, Any], log) -> None:
    """--qat always: every INT8 artifact accuracy control tunes (export.context.tuned) rebuilt from the tuned
    weights."""
    for a in artifacts:
        if a.variant is None and qat_source.config.ov_int8 == "qdq":
            continue  # the OpenVINO IR: converted from its QDQ model afterwards (or, with none, left as NNCF made it)
        if (qat_source.config.out / a.name).is_file():
            qat_source.rebuild(a.name, [])
            mark(recipes, a.name, qat_source)
            log(f"QAT: {a.name} rebuilt from the tuned weights")


def mark(recipes: dict[str, Any], name: str, qat_source: QatSource | None) -> None:
    """The recipe says which weights the artifact was quantized from."""
    if name in recipes:
        recipes[name]["weights_from"] = "qat" if qat_source is not None else "ptq"
        if qat_source is not None:
            recipes[name]["qat"] = qat_source.record()
