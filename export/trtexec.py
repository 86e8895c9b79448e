"""The trtexec command line of an engine build, in one place: the export's build script (its commented-out
equivalent) and jetson/build_engine.sh (through `python3 jetson/sidecar.py trtexec ...`) both take it from here.

Standard library and dualpath.contract only: it runs on the device, which has no torch.
"""
from __future__ import annotations

from dualpath import contract


def precision_flags(qdq: bool, tensorrt_major: int = 10) -> list[str]:
    """TensorRT 10 (JetPack 6): the Q/DQ nodes fix which layers run in INT8; --int8 lets them, --fp16 lets the layers
    left unquantised run in FP16 rather than FP32 (--int8 only for a QDQ model: on a network without Q/DQ nodes trtexec
    would make up INT8 ranges). TensorRT 11 (JetPack 7) has no precision flags: networks are strongly typed, so the
    ONNX alone says what runs in INT8 (the rest runs in FP32)."""
    if tensorrt_major >= 11:
        return []
    return ["--int8", "--fp16"] if qdq else ["--fp16"]


def trtexec_args(onnx: str, engine: str, max_batch: int, *, qdq: bool, tensorrt_major: int = 10,
                 input_name: str = contract.INPUT_NAME, image_size: int = contract.IMAGE_SIZE,
                 extra: tuple[str, ...] = ()) -> list[str]:
    """trtexec's arguments (without the program) building `engine` from `onnx`: batch 1 to `max_batch` of the
    contract's input, optimised for batch 1 (the camera's), then `extra` (a timing cache, a workspace size)."""
    def shape(batch: int) -> str:
        return f"{input_name}:{batch}x3x{image_size}x{image_size}"

    return [f"--onnx={onnx}", f"--saveEngine={engine}", *precision_flags(qdq, tensorrt_major),
            f"--minShapes={shape(1)}", f"--optShapes={shape(1)}", f"--maxShapes={shape(max_batch)}", *extra]
