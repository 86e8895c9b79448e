"""torch checkpoint -> ONNX FP32 -> QDQ INT8 ONNX, OpenVINO IR FP32/INT8, TensorRT engine; manifest; drift reports.

    python -m export --checkpoint runs/x/best.pt --out runs/x/export --int8

Nothing is imported until asked for (PEP 562): export.trtexec runs on the device, which has no torch.
"""
from __future__ import annotations

import importlib

_PUBLIC = {"ExportConfig": "export.config", "export_config": "export.config", "run_export": "export.pipeline",
           "ExportFailed": "export.context"}
__all__ = list(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
