"""The TensorRT engine build on the device: build_engine.sh and its helper module sidecar.py (no torch)."""
