"""What `python -m export` can write, in one table: the formats `--backends` names (with the packages each needs) and
every artifact (the format that asks for it, with which precision flag, what it is built from and compared with).

The command line's choices, ExportConfig's check, the missing-package check, which steps run and in what order
(export.pipeline.steps), the drift pairs and accuracy control's targets are all read from here. A new format is an
entry in FORMATS naming its step module, its artifacts in ARTIFACTS (after those they are built from), and that
module: `step(config, ctx, artifacts) -> {artifact: recipe}` writes them (export.pipeline), and a format with
`controlled` INT8 artifacts also has `quantize(config, ctx, artifact, kept, weights) -> path`, which accuracy control
and QAT rebuild them with (export.control_step).
"""
from __future__ import annotations

from dataclasses import dataclass

from export.quantize_onnx import VARIANTS

FP32_ONNX = "model_fp32.onnx"
FP32_XML = "model_fp32.xml"
INT8_XML = "model_int8.xml"
FP16_ONNX = "model_fp16.onnx"
FP16_XML = "model_fp16.xml"
BF16_XML = "model_bf16.xml"
INT8_ENGINE = "model_int8.engine"
FP16_ENGINE = "model_fp16.engine"


# The calibration's activation ranges (ONNX Runtime's cache), per tensor and with each concat group widened to one.
RANGES = "calibration_ranges.json"
SHARED_RANGES = "calibration_ranges_shared_concat.json"


def ranges_for(variant) -> str:
    """The ranges file a QDQ variant (export.quantize_onnx.Variant) is quantized from."""
    return SHARED_RANGES if variant.share_concat else RANGES


def int8_onnx_name(variant: str) -> str:
    return f"model_int8_{variant}.onnx"


@dataclass(frozen=True)
class Format:
    help: str  # what choosing it writes, for --help
    step: str  # the module that writes its artifacts (imported when the export runs its step)
    packages: tuple[str, ...] = ()  # modules it needs (module name = pip name for all of ours)
    int8_packages: tuple[str, ...] = ()  # ...and with --int8
    files: tuple[str, ...] = ()  # what its step writes beside its artifacts (checked before an export, as theirs are)


# Every export writes the FP32 ONNX and checks it against torch: these packages are needed whatever --backends says.
BASE_PACKAGES = ("onnx", "onnxruntime", "onnxslim", "torch")
FORMATS: dict[str, Format] = {
    "onnx": Format("QDQ INT8 ONNX (u8 for ONNX Runtime CPUs) and FP16 ONNX, for ONNX Runtime", "export.onnx_step"),
    "openvino": Format("OpenVINO IR FP32, INT8 (NNCF), FP16 and bf16", "export.openvino_step", ("openvino",), ("nncf",)),
    # No package: without TensorRT the export writes the build script for the device.
    "tensorrt": Format("TensorRT engines where tensorrt imports, else their build script for the device",
                       "export.tensorrt_step",
                       files=("build_tensorrt_engine.py", "build_tensorrt_engine.sh", "tensorrt.cache")),
}
DEFAULT_FORMATS = ("onnx", "openvino")  # tensorrt on request: its engines are built on the device that runs them


@dataclass(frozen=True)
class Artifact:
    name: str  # file name in the export folder
    format: str  # the --backends entry that asks for it
    precision: str  # "fp32": always (with its format); "int8": with --int8; "fp16": with --fp16; "bf16": with --bf16
    source: str | None = FP32_ONNX  # built from this artifact, so written too (None: from the checkpoint)
    reference: str | None = None  # its drift report compares it with this FP32 artifact
    controlled: bool = False  # --accuracy-control returns its most sensitive layers to float
    variant: str | None = None  # the QDQ variant (export.quantize_onnx.VARIANTS), written when --qdq-variants names it


ARTIFACTS: tuple[Artifact, ...] = (
    Artifact(FP32_ONNX, "onnx", "fp32", source=None),  # every export: the source of all the others
    Artifact(FP32_XML, "openvino", "fp32"),
    # The FP32 IR's graph and weights, its metadata asking CPUs for bf16 compute (export.openvino_step.openvino_bf16)
    Artifact(BF16_XML, "openvino", "bf16", source=FP32_XML, reference=FP32_XML),
    *(Artifact(int8_onnx_name(v), "onnx", "int8", reference=FP32_ONNX, controlled=True, variant=v) for v in VARIANTS),
    Artifact(INT8_XML, "openvino", "int8", reference=FP32_XML, controlled=True),
    Artifact(FP16_ONNX, "onnx", "fp16", reference=FP32_ONNX),
    Artifact(FP16_XML, "openvino", "fp16", reference=FP32_XML),
    Artifact(INT8_ENGINE, "tensorrt", "int8", source=int8_onnx_name("s8"), reference=FP32_ONNX),
    Artifact(FP16_ENGINE, "tensorrt", "fp16", source=FP16_ONNX, reference=FP32_ONNX),
)
BY_NAME = {a.name: a for a in ARTIFACTS}


def planned(backends: tuple[str, ...], int8: bool, fp16: bool, qdq_variants: tuple[str, ...],
            bf16: bool = False) -> dict[str, Artifact]:
    """The artifacts an export with these options writes, in ARTIFACTS order: those of the asked formats and
    precisions, the FP32 ONNX, and what they are built from or compared with (the TensorRT engines' ONNX sources)."""
    on = {"fp32": True, "int8": int8, "fp16": fp16, "bf16": bf16}
    wanted = {FP32_ONNX}
    for a in ARTIFACTS:
        if a.format in backends and on[a.precision] and (a.variant is None or a.variant in qdq_variants):
            wanted |= {a.name} | {n for n in (a.source, a.reference) if n is not None}
    return {a.name: a for a in ARTIFACTS if a.name in wanted}


def unknown_formats(backends: tuple[str, ...]) -> str:
    """'' when every name is a format, else one line saying which is not and what to choose."""
    unknown = [b for b in backends if b not in FORMATS]
    what = f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not a backend" if unknown else \
        "no backend given" if not backends else ""
    return what and f"{what}; --backends takes one or more of {', '.join(FORMATS)}, comma-separated"


def missing_packages(backends: tuple[str, ...], int8: bool) -> list[str]:
    """The packages these formats need that are not installed (found without importing them)."""
    import importlib.util

    need = list(BASE_PACKAGES)
    for name in backends:
        need += FORMATS[name].packages + (FORMATS[name].int8_packages if int8 else ())
    return [pkg for pkg in dict.fromkeys(need) if importlib.util.find_spec(pkg) is None]
