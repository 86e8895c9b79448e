"""Shared by the QDQ tests here: a tiny real dual-path model exported to FP32 ONNX and quantized to the s8 and u8
QDQ models exactly as the export does (export.quantize_onnx), built once per test session, without the rest of the
export (no OpenVINO, drift, benchmark)."""
from __future__ import annotations

from pathlib import Path

_BUILT: dict[str, Path] = {}


def calibration_batches(n: int = 20, batch_size: int = 8):
    """n calibration scenes in batches of batch_size (the last one partial, as the export's usually is)."""
    from calibration import CALIBRATION_SEED, CalibrationBatches
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range

    return CalibrationBatches(render_range(SceneConfig(), CALIBRATION_SEED, 0, n)["noisy"], batch_size)


def tiny_fp32(root: Path) -> Path:
    """The FP32 ONNX model of the tests' tiny checkpoint (export_helpers.make_checkpoint), as the export writes it."""
    import onnx

    from export import onnx_fp32
    from export_helpers import make_checkpoint
    from train.checkpoint import load_model

    root.mkdir(parents=True, exist_ok=True)
    model, _ = load_model(make_checkpoint(root / "best.pt"))
    raw, path = root / "raw.onnx", root / "model_fp32.onnx"
    onnx_fp32.export_onnx(model, raw)
    onnx.save(onnx_fp32.simplify(onnx.load(str(raw))), str(path))
    return path


def cached_fp32(root: Path) -> Path:
    """tiny_fp32, exported once per session."""
    if "fp32" not in _BUILT:
        _BUILT["fp32"] = tiny_fp32(root / "fp32")
    return _BUILT["fp32"]


def tiny_qdq(root: Path) -> dict[str, Path]:
    """{"fp32", "s8", "u8", "ranges_shared"} paths (MinMax calibration), built once per session under root."""
    if "s8" not in _BUILT:
        import onnx

        from export import quantize_onnx as q

        fp32 = cached_fp32(root)
        ranges, shared = root / "ranges.json", root / "ranges_shared.json"
        q.calibrate(fp32, calibration_batches(), "minmax", ranges, shared)
        _BUILT["ranges_shared"] = shared
        for name, variant in q.VARIANTS.items():
            path = root / f"model_int8_{name}.onnx"
            q.quantize(fp32, path, shared if variant.share_concat else ranges, variant, "minmax",
                       variant.float_nodes(onnx.load(str(fp32))))
            q.copy_metadata(onnx.load(str(fp32)), path, precision='"int8-qdq-%s"' % name)
            _BUILT[name] = path
    return dict(_BUILT)
