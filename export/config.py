"""ExportConfig: everything `python -m export` needs, validated up front (before any artifact is written). It nests
the configs of the stages it runs (calibration, drift reports, accuracy control, benchmark); `python -m export`'s
flags fill it (dualpath.cli.fill: --calib-n is calibration.n, by the field's metadata), and export_config() takes
the same flat names."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calibration.sets import CalibrationConfig
from dualpath.seeds import ACCURACY_CONTROL_SEED, DRIFT_SEED
from export.artifacts import DEFAULT_FORMATS, Artifact, planned, unknown_formats
from export.control_step import ControlConfig
from export.onnx_fp32 import EXPORTERS, OPSET
from export.openvino_export import ACTIVATION_RANGES, OV_INT8
from export.qat_step import DEFAULT_MINUTES, QAT_MODES, QAT_OBJECTIVES
from export.quantize_onnx import CALIB_METHODS, U8_WEIGHT_BITS, VARIANTS
from runtime.drift.report import DriftConfig


@dataclass(frozen=True)
class BenchConfig:
    """The benchmark table (export.benchmark): every artifact timed in a fresh process every round."""
    threads: int = 2  # inference threads
    iters: int = 200  # batch-1 calls per artifact and round
    rounds: int = 3

    def __post_init__(self) -> None:
        if self.threads < 1 or self.iters < 10 or self.rounds < 1:
            raise ValueError(f"threads and rounds must be >= 1, iters >= 10, got threads {self.threads}, rounds "
                             f"{self.rounds}, iters {self.iters}")


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: Path
    out: Path
    int8: bool = False  # also write the INT8 artifacts (QDQ ONNX, OpenVINO INT8, TensorRT engine or its script)
    backends: tuple[str, ...] = DEFAULT_FORMATS  # export.artifacts.FORMATS: which formats to write
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig,  # --calib-n, --calib-seed
                                           metadata={"prefix": "calib_"})
    # minmax | entropy | percentile (ONNX Runtime's, 99.99th): each activation's INT8 range for the QDQ models, and
    # through the u8 model for OpenVINO's (ov_int8 "qdq"). Percentile by default: on four make-demo models it never
    # let a decoder's rare outliers wreck an INT8 model (min-max on the two with outliers: s8 12.1% and 15.5% label
    # flips, SSIM -0.05 and -0.08) and it was the better one for s8 on all three measured both ways (docs/results.md).
    calib_method: str = "percentile"
    ov_ranges: str = "minmax"  # NNCF activation ranges: minmax | mean_minmax (see export.openvino_export)
    # OpenVINO INT8: "qdq" = OpenVINO's conversion of the u8 (else s8) QDQ model, "nncf" = NNCF's own quantization
    ov_int8: str = "qdq"
    qdq_variants: tuple[str, ...] = ("u8", "s8")  # u8: ONNX Runtime CPU, s8: TensorRT (see export.quantize_onnx)
    # The u8 model's weights (and so the OpenVINO INT8 IR's, converted from it): 8 bits for CPUs with VNNI or AMX,
    # 7 for CPUs with AVX2 only, whose u8 x s8 kernels can saturate on 8-bit weights (export.quantize_onnx.variant).
    u8_weights: int = 8
    fp16: bool = False  # also write FP16 artifacts: ONNX (ONNX Runtime GPU, TensorRT --fp16 source), OpenVINO IR
    bf16: bool = False  # also write the bf16 OpenVINO IR (the FP32 IR, run in bf16 by CPUs) with its drift report
    accuracy_control: bool = False
    control: ControlConfig = field(default_factory=ControlConfig,  # --control-margin, --min-int8-share
                                   metadata={"prefix": "control_", "shared": ("min_int8_share",)})
    # Quantization-aware fine-tuning (export.qat): "auto" = accuracy control's fallback for an artifact that post-
    # training quantization leaves past its budget; "always" = every INT8 artifact from QAT-tuned weights; "never".
    qat: str = "auto"
    qat_minutes: float = DEFAULT_MINUTES  # QAT's time box (export.qat_step)
    qat_scenes: int = 4096  # training scenes QAT renders once and cycles through (the checkpoint's extra seed)
    qat_options: dict = field(default_factory=dict)  # export.qat.QATConfig fields beyond the flags (benchmarks)
    qat_objective: str = "train"  # export.qat.OBJECTIVES: labels ("train"), the FP32 model's outputs ("distill"), both
    # The drift reports (docs/design.md's budget is defined on 1000 held-out scenes) with a sweep over degradation:
    # --drift-n, --severities, --sweep-n; their scene cache and workers (--data-root, --workers) serve every scene set.
    drift: DriftConfig = field(default_factory=lambda: DriftConfig(severities=(0.0, 1.0, 2.0, 3.0)), metadata={
        "prefix": "drift_", "shared": ("severities", "sweep_n", "data_root", "workers")})
    parity_n: int = 64
    # FP32 ONNX vs torch, largest |difference| of either output (probabilities, reconstruction in [-1, 1]) on the
    # parity scenes; past it the export fails (exit 1). Far above what real models reach (docs/measurements.md).
    parity_tol: float = 1e-3
    budgets: dict = field(default_factory=dict)  # metric -> runtime.drift.Budget; {} = docs/design.md's defaults
    opset: int = OPSET
    exporter: str = "torchscript"
    threads: int | None = None
    max_batch: int = 32  # TensorRT optimisation profile
    baseline: Path | None = None  # a previous export (folder or manifest.json): each drift report also gates against it
    benchmark: bool = False  # time every artifact (each in its own process): benchmark.md + benchmark.json
    bench: BenchConfig = field(default_factory=BenchConfig)  # --bench-threads, --bench-iters, --bench-rounds

    @property
    def artifacts(self) -> dict[str, Artifact]:
        """Name -> Artifact of every model file this export writes (export.artifacts.planned)."""
        return planned(self.backends, self.int8, self.fp16, self.qdq_variants, bf16=self.bf16)

    @property
    def data_root(self) -> Path:
        """Where the calibration, accuracy-control and drift scene sets are cached (--data-root)."""
        return self.drift.data_root

    @property
    def workers(self) -> int:
        """Processes generating scenes, for every scene set (--workers)."""
        return self.drift.workers

    def __post_init__(self) -> None:
        if unknown_formats(self.backends):
            raise ValueError(unknown_formats(self.backends))
        if self.calib_method not in CALIB_METHODS:
            raise ValueError(f"calib_method must be one of {', '.join(CALIB_METHODS)}, got {self.calib_method!r}")
        if self.ov_int8 not in OV_INT8:
            raise ValueError(f"ov_int8 must be one of {', '.join(OV_INT8)}, got {self.ov_int8!r}")
        if self.ov_ranges not in ACTIVATION_RANGES:
            raise ValueError(f"ov_ranges must be one of {', '.join(ACTIVATION_RANGES)}, got {self.ov_ranges!r}")
        if self.u8_weights not in U8_WEIGHT_BITS:
            raise ValueError(f"u8_weights must be 8 or 7, got {self.u8_weights!r}")
        if not set(self.qdq_variants) <= set(VARIANTS) or not self.qdq_variants:
            raise ValueError(f"qdq_variants must be a non-empty subset of {sorted(VARIANTS)}, got {self.qdq_variants}")
        if self.exporter not in EXPORTERS:
            raise ValueError(f"exporter must be one of {EXPORTERS}, got {self.exporter!r}")
        if not 13 <= self.opset <= 21:
            raise ValueError(f"opset must be in 13..21 (per-channel QDQ needs >= 13), got {self.opset}")
        for name in ("parity_n", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.parity_tol < float("inf"):
            raise ValueError(f"parity_tol must be a finite number > 0, got {self.parity_tol}")
        self._check_late_flags()
        if self.qat not in QAT_MODES:
            raise ValueError(f"qat must be one of {', '.join(QAT_MODES)}, got {self.qat!r}")
        if not (isinstance(self.qat_minutes, (int, float)) and 0 < self.qat_minutes <= 24 * 60):
            raise ValueError(f"qat_minutes must be in (0, 1440], got {self.qat_minutes!r}")
        if isinstance(self.qat_scenes, bool) or not isinstance(self.qat_scenes, int) or self.qat_scenes < 32:
            raise ValueError(f"qat_scenes must be an integer >= 32, got {self.qat_scenes!r}")
        if self.qat_objective not in QAT_OBJECTIVES:
            raise ValueError(f"qat_objective must be one of {', '.join(QAT_OBJECTIVES)}, got {self.qat_objective!r}")
        if self.qat == "always" and not self.int8:
            raise ValueError("--qat always tunes the INT8 artifacts: add --int8")
        if self.bf16 and "openvino" not in self.backends:
            raise ValueError("--bf16 writes an OpenVINO IR (model_bf16.xml): add openvino to --backends")
        if self.accuracy_control and not self.int8:
            raise ValueError("--accuracy-control needs --int8")
        if self.int8 and "tensorrt" in self.backends and "s8" not in self.qdq_variants:
            raise ValueError("the TensorRT engine is built from the s8 QDQ model: keep 's8' in qdq_variants")

    def _check_late_flags(self) -> None:
        """What the export uses only after the models are built (threads, the seeds of its scene sets), refused now
        rather than after minutes of work (the drift reports' config checked itself when it was made)."""
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        seed = self.calibration.seed
        if seed in (DRIFT_SEED, ACCURACY_CONTROL_SEED):
            raise ValueError(f"calib_seed {seed} is the seed of the "
                             f"{'drift' if seed == DRIFT_SEED else 'accuracy-control'} scenes: calibrating on "
                             f"them would grade the model on its own calibration scenes; choose another --calib-seed")


def export_config(**flags) -> ExportConfig:
    """An ExportConfig from the command line's flat names (calib_n=16, drift_n=20, workers=2, bench_iters=20: what
    scripts and tests write), nested as `python -m export` nests its flags (dualpath.cli.fill)."""
    from dualpath.cli import from_flags

    return from_flags(ExportConfig, flags)
