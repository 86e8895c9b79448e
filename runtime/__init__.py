"""Serving without torch: numpy + OpenCV + one inference backend (ONNX Runtime, OpenVINO or TensorRT).

    runtime.backends   load_backend(path) -> an object with .metadata, .infer({"image": x}) -> {"probs", "recon"}
    runtime.drift      python -m runtime.drift: how far a candidate (INT8) artifact drifts from its FP32 reference
"""

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)
