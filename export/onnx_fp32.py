"""Checkpoint -> FP32 ONNX: outputs probs (sigmoid) and recon, dynamic batch, simplified, metadata embedded.

Exporter: torch's TorchScript-based exporter (dynamo=False), opset 17. Measured with torch 2.14 on the dual-path
model: it exports in ~3 s with GlobalAveragePool / Flatten nodes and readable node names (/model/encoder/...),
which the quantization rules match on; the dynamo exporter took 35-100 s (tests and every export pay that) and
lowers pooling to ReduceMean. Both give a symbolic batch. --exporter dynamo selects the other one.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from dualpath import contract
from runtime.backends.metadata import ModelMetadata

OPSET = 17  # ONNX opset: TensorRT 8.6-11, OpenVINO, ONNX Runtime QDQ per-channel (>= 13) all take it
EXPORTERS = ("torchscript", "dynamo")


def deployed(model):
    """The model as it ships: image -> (sigmoid probabilities, reconstruction)."""
    import torch

    class Deployed(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.model = inner

        def forward(self, image):
            out = self.model(image)
            return torch.sigmoid(out.logits), out.recon

    return Deployed(model).eval()


def export_onnx(model, path: Path, opset: int = OPSET, exporter: str = "torchscript") -> None:
    """Write the FP32 graph of `model` (eval mode) to `path`, with a symbolic batch dimension."""
    import torch

    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    wrapper = deployed(model)
    example = (torch.zeros(2, 3, contract.IMAGE_SIZE, contract.IMAGE_SIZE),)
    names = dict(input_names=[contract.INPUT_NAME], output_names=list(contract.OUTPUT_NAMES))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's notice
        if exporter == "torchscript":
            axes = {n: {0: "batch"} for n in (contract.INPUT_NAME, *contract.OUTPUT_NAMES)}
            torch.onnx.export(wrapper, example, str(path), opset_version=opset, dynamo=False,
                              dynamic_axes=axes, do_constant_folding=True, **names)
        else:
            from torch.export import Dim

            torch.onnx.export(wrapper, example, str(path), opset_version=max(opset, 18), dynamo=True,
                              dynamic_shapes={contract.INPUT_NAME: {0: Dim("batch")}}, **names)


def simplify(proto):
    """onnxslim: folds constants and Identity chains, fuses Conv+BN; keeps the names the quantizer matches."""
    import onnxslim

    return onnxslim.slim(proto)


def embed_metadata(proto, metadata: ModelMetadata) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "dualpath.export"


def check_graph(proto) -> None:
    """The contract's names and a symbolic batch, or a ValueError naming what is off."""
    import onnx

    onnx.checker.check_model(proto)
    inputs = [i.name for i in proto.graph.input]
    outputs = [o.name for o in proto.graph.output]
    if inputs != [contract.INPUT_NAME] or outputs != list(contract.OUTPUT_NAMES):
        raise ValueError(f"exported graph has inputs {inputs} and outputs {outputs}, expected "
                         f"[{contract.INPUT_NAME!r}] and {list(contract.OUTPUT_NAMES)}")
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if not batch.dim_param:
        raise ValueError("exported graph has a fixed batch size; it must be symbolic")


def opset_of(proto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def parity(model, backend, images: np.ndarray, batch_size: int = 32) -> dict[str, float]:
    """Max |torch - backend| of both outputs on uint8 scenes (the FP32 export should agree to ~1e-5)."""
    import torch

    wrapper = deployed(model)
    worst = {contract.OUTPUT_PROBS: 0.0, contract.OUTPUT_RECON: 0.0}
    for start in range(0, len(images), batch_size):
        x = contract.preprocess(images[start : start + batch_size])
        with torch.no_grad():
            ref = dict(zip(contract.OUTPUT_NAMES, (t.numpy() for t in wrapper(torch.from_numpy(x)))))
        got = backend.infer({contract.INPUT_NAME: x})
        for name in worst:
            worst[name] = max(worst[name], float(np.abs(ref[name] - got[name]).max()))
    return {f"{name}_max_abs_diff": value for name, value in worst.items()} | {"n": int(len(images))}
