#!/usr/bin/env bash
# Build the TensorRT engine ON THE DEVICE THAT WILL RUN IT, from the INT8 QDQ ONNX that `python -m export --int8`
# writes, and write the sidecar JSON that `python -m runtime` reads (labels, normalisation, TensorRT version, GPU).
#
#   jetson/build_engine.sh model_int8_s8.onnx [model_int8.engine]   (default: the ONNX name with .engine)
#   jetson/build_engine.sh model_fp16.onnx model_fp16.engine        (the FP16 engine, from python -m export --fp16)
#
# Engines only run with the TensorRT version and GPU (compute capability) they were built with, so this is run once
# per device and again after a JetPack / TensorRT upgrade. An engine whose sidecar already names this ONNX (sha256),
# this TensorRT and this GPU is kept (the cache key jetson-inference uses); FORCE=1 rebuilds anyway.
#
# Running the engine (python -m runtime --model ENGINE) needs cuda-python of the CUDA 12 line on JetPack 6:
#   pip install "cuda-python>=12,<13"   (a plain `pip install cuda-python` brings the CUDA 13 build)
#
# Environment: TRTEXEC (default: trtexec on PATH, else /usr/src/tensorrt/bin/trtexec), MAX_BATCH (default 1; the
# ONNX has a dynamic batch axis), WORKSPACE_MIB (default 1024), PYTHON (default python3), FORCE=1.
#
# Exit codes, as in every dualpath command: 0 built (or up to date), 1 trtexec ran and failed to build the engine,
# 2 bad input or environment (no such ONNX file, no trtexec, a sidecar that cannot be written), with one line.
set -euo pipefail

usage() { echo "usage: $0 MODEL_int8_s8.onnx [ENGINE]   (see the comments at the top of this script)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
onnx=$1
engine=${2:-${onnx%.onnx}.engine}
PYTHON=${PYTHON:-python3}
MAX_BATCH=${MAX_BATCH:-1}
WORKSPACE_MIB=${WORKSPACE_MIB:-1024}
repo=$(cd "$(dirname "$0")/.." && pwd)
# The sidecar helper is a module of this checkout (it uses runtime.backends.trt_engine): run it from the repository.
sidecar() { PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m jetson.sidecar "$@"; }

[ -f "$onnx" ] || { echo "error: no such ONNX file: $onnx (copy the export's model_int8_s8.onnx (and metadata.json) here)" >&2; exit 2; }
case "$onnx" in *.onnx) ;; *) echo "error: $onnx is not an .onnx file" >&2; exit 2 ;; esac

TRTEXEC=${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}
[ -x "$TRTEXEC" ] || {
    echo "error: trtexec not found. JetPack installs it as /usr/src/tensorrt/bin/trtexec (sudo apt install" \
         "nvidia-jetpack, or tensorrt); on a desktop it comes with the TensorRT tar / deb packages. Or set TRTEXEC=..." >&2
    exit 2
}

# Which TensorRT, from the banner every trtexec run prints: "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] ...".
banner=$("$TRTEXEC" --help 2>&1 | grep -m1 -o 'TensorRT v[0-9]*' || true)
code=${banner#TensorRT v}
[ -n "$code" ] || { echo "error: cannot tell the TensorRT version from '$TRTEXEC --help'" >&2; exit 2; }
trt_major=$((code / 10000))

if [ "${FORCE:-0}" != 1 ] && sidecar check "$engine" "$onnx" "$TRTEXEC"; then
    echo "$engine is up to date for $onnx on this device (FORCE=1 rebuilds)"
    exit 0
fi

# The trtexec command line is the export's (runtime/backends/trt_engine.py trtexec_args: batch 1..MAX_BATCH; on
# TensorRT 10 --int8 --fp16 for the QDQ model, --fp16 for the FP16 one; no precision flags on TensorRT 11, whose
# networks are strongly typed), with this script's workspace and no timing run.
args_text=$(sidecar trtexec "$onnx" "$engine" "$MAX_BATCH" "$WORKSPACE_MIB" "$trt_major") || {
    echo "error: cannot make trtexec's command line for $onnx (MAX_BATCH and WORKSPACE_MIB must be integers)" >&2
    exit 2
}
mapfile -t trtexec_args <<< "$args_text"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "building $engine from $onnx with TensorRT $trt_major.x (takes a few minutes on a Jetson)..."
if ! "$TRTEXEC" "${trtexec_args[@]}" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "error: trtexec failed (full log above); is $onnx the QDQ INT8 ONNX from python -m export --int8?" >&2
    exit 1
fi
sidecar write "$engine" "$onnx" "$log"
echo "wrote $engine and $engine.json; run: python -m runtime --model $engine --source csi://0"
