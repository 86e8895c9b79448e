"""The TensorRT engine build on the device: build_engine.sh and its helper module sidecar.py (no torch)."""

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)
