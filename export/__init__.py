"""torch checkpoint -> ONNX FP32 -> QDQ INT8 ONNX, OpenVINO IR FP32/INT8, TensorRT engine; manifest; drift reports.

    python -m export --checkpoint runs/x/best.pt --out runs/x/export --int8
"""

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)

from export.config import ExportConfig
from export.pipeline import run_export

__all__ = ["ExportConfig", "run_export"]
