"""OpenVINO IR FP32 (converted from the FP32 ONNX) and INT8 (NNCF post-training quantization of the OV model)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from runtime.backends.ov import write_rt_info

PRESETS = ("mixed", "performance")  # mixed: asymmetric activations (CPU default); performance: symmetric
# How NNCF sets each activation's range from the calibration statistics. NNCF's default is "mean_minmax" (the mean
# over calibration scenes of each scene's min and max), which clips the rare large activations; "minmax" keeps the
# whole observed range, as ONNX Runtime's minmax calibration does. On the demo model only minmax kept the macro mAP
# drift within its budget; with mean_minmax neither a float encoder, NNCF's overflow fix nor full bias correction did
# (figures: docs/measurements.md).
ACTIVATION_RANGES = ("minmax", "mean_minmax")  # NNCF RangeEstimatorParametersSet names, lower-cased
OV_INT8 = ("qdq", "nncf")  # the INT8 IR: converted from the export's QDQ model, or NNCF's own (export.config)


def convert(onnx_path: Path):
    import openvino as ov

    return ov.convert_model(str(onnx_path))


# The inference precision an FP16 IR is shipped with, per OpenVINO device (its metadata's inference_precision, which
# runtime.backends.ov honours). x86 CPU plugins compute float models in bf16 where the CPU has AVX512_BF16 / AMX, and
# bf16's 8-bit mantissa does not hold the drift budget (issue 19: -0.019 / -0.034 macro mAP on tiny exports), so the
# CPU runs it in f32 (FP16 weights, decompressed); GPUs compute f16, what the artifact is for.
FP16_INFERENCE_PRECISION = {"CPU": "f32", "GPU": "f16"}

# The bf16 IR's (export.openvino_step.openvino_bf16): the FP32 IR run in bf16 on CPUs (AVX512_BF16 / AMX); other
# devices keep their default.
BF16_INFERENCE_PRECISION = {"CPU": "bf16"}


def cpu_has_native_bf16() -> bool:
    """Whether OpenVINO's CPU plugin computes bf16 here (its OPTIMIZATION_CAPABILITIES name BF16: AVX512_BF16 or AMX);
    without it a bf16 inference precision computes f32."""
    import openvino as ov

    try:
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # noqa: BLE001 - no CPU plugin: nothing runs bf16 here
        return False


def save_ir(model, xml_path: Path, props: dict[str, str], compress_to_fp16: bool = False) -> None:
    """Write model.xml + model.bin atomically: both go to a temporary folder, .bin is moved first, .xml last
    (the .xml is what marks the pair complete). compress_to_fp16: OpenVINO's own FP16 weight compression (float
    weights stored as FP16, decompressed by the plugin: FP16 compute where the device has it, e.g. GPUs, ARM); its
    metadata then names the inference precision per device (FP16_INFERENCE_PRECISION) unless props do."""
    import json

    import openvino as ov

    if compress_to_fp16 and "inference_precision" not in props:
        props = {**props, "inference_precision": json.dumps(FP16_INFERENCE_PRECISION)}
    write_rt_info(model, props)
    xml_path = Path(xml_path)
    with tempfile.TemporaryDirectory(dir=xml_path.parent, prefix=f".{xml_path.stem}.tmp") as tmp:
        tmp_xml = Path(tmp) / xml_path.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        os.replace(tmp_xml.with_suffix(".bin"), xml_path.with_suffix(".bin"))
        os.replace(tmp_xml, xml_path)


def ov_ignored_names(model, onnx_names: Iterable[str]) -> list[str]:
    """The OpenVINO ops that carry these ONNX node names. OpenVINO splits an ONNX Conv / Gemm with a bias into the
    weighted op, named "<node>/WithoutBiases", and the bias Add, named "<node>": NNCF quantizes the weighted op, so
    keeping a layer in float must name that one too."""
    present = {op.get_friendly_name() for op in model.get_ops()}
    names = set()
    for name in onnx_names:
        names.update(n for n in (name, f"{name}/WithoutBiases") if n in present)
    return sorted(names)


def quantize_int8(model, batches: Iterable[dict[str, np.ndarray]], ignored: Iterable[str], subset_size: int,
                  preset: str = "mixed", activation_ranges: str = "minmax"):
    """NNCF PTQ on the OV model; `ignored` node names (shared with the ONNX rules) stay in float."""
    import logging

    import nncf

    from calibration.adapters import nncf_dataset

    nncf.set_log_level(logging.WARNING)  # its INFO lines list every ignored node: noise in an export log

    if preset not in PRESETS:
        raise ValueError(f"OpenVINO INT8 preset must be one of {PRESETS}, got {preset!r}")
    if activation_ranges not in ACTIVATION_RANGES:
        raise ValueError(f"OpenVINO activation ranges must be one of {ACTIVATION_RANGES}, got {activation_ranges!r}")
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimator = getattr(RangeEstimatorParametersSet, activation_ranges.upper())  # MINMAX | MEAN_MINMAX
    names = ov_ignored_names(model, ignored)
    return nncf.quantize(
        model, nncf_dataset(batches), subset_size=subset_size,
        preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
        ignored_scope=nncf.IgnoredScope(names=names, validate=False),
        advanced_parameters=nncf.AdvancedQuantizationParameters(activations_range_estimator_params=estimator),
    )


WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul")
LOW_PRECISION = ("i8", "u8", "i4", "u4")
_WEIGHT_PATH = ("Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze")


def ir_summary(model) -> dict:
    """What an OpenVINO model holds, read from the model itself: weighted ops (convolutions, matmuls with a constant
    weight) with INT8 weights (NNCF stores them as an i8 constant decompressed by Convert / Multiply) and the float
    ones by name (the ONNX node name: "<node>/WithoutBiases" is the weighted half of a biased ONNX Conv / Gemm)."""
    kinds = {op: _weight_kind(op.input(1).get_source_output().get_node())
             for op in model.get_ops() if op.get_type_name() in WEIGHTED_OPS}
    weighted = [op for op, kind in kinds.items() if kind]
    int8 = [op for op, kind in kinds.items() if kind == "int8"]
    names = lambda ops: {op.get_friendly_name().removesuffix("/WithoutBiases") for op in ops}  # noqa: E731
    return {"conv_gemm_total": len(weighted), "conv_gemm_int8": len(int8),
            "float_conv_gemm": sorted(names(weighted) - names(int8)),
            "fake_quantize_nodes": sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops())}


def _weight_kind(node, depth: int = 6) -> str | None:
    """"int8" / "float" for a weight (a constant, through its decompression ops), None for an activation."""
    kind = node.get_type_name()
    if kind == "Constant":
        return "int8" if node.get_output_element_type(0).get_type_name() in LOW_PRECISION else "float"
    if depth == 0 or kind not in _WEIGHT_PATH + ("FakeQuantize",):
        return None
    found = [_weight_kind(i.get_source_output().get_node(), depth - 1) for i in node.inputs()[:1]]
    if kind == "FakeQuantize" and found[0]:  # quantized in memory, before compression on save
        return "int8"
    return found[0]


def recorded_inference_precision(xml_path: Path) -> dict | None:
    """The inference precision per device an IR's metadata asks for ({"CPU": "f32", ...}), read back from the file;
    None when it names none (the device's default, or f32 for an FP32 artifact: runtime.backends.ov)."""
    import json

    import openvino as ov

    from runtime.backends.ov import rt_info_props

    value = rt_info_props(ov.Core().read_model(str(xml_path))).get("inference_precision")
    return json.loads(value) if value else None


def record_inference_precisions(folder: Path, manifest: dict) -> None:
    """Each OpenVINO IR's recipe in `manifest` names the inference precision its metadata asks for, read back from
    the file in `folder` (the FP16 IR's: FP16_INFERENCE_PRECISION), which the runtime and the drift reports use."""
    for name, recipe in manifest.get("recipes", {}).items():
        if name.endswith(".xml") and (Path(folder) / name).is_file():
            asked = recorded_inference_precision(Path(folder) / name)
            if asked:
                recipe["inference_precision"] = asked
