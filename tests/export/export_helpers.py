"""Shared by tests/export: a tiny real dual-path checkpoint (torch), and a fake `tensorrt` module for the TensorRT
build paths on machines without TensorRT."""
from __future__ import annotations

import types


def make_checkpoint(path, arch="dualpath", seed=0, **extra):
    import torch

    from dualpath.model import ModelConfig, build_model
    from train.checkpoint import make_checkpoint as make, save_checkpoint

    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch=arch, backbone="densenet_tiny", hidden=16)).eval()
    ckpt = make(model, train_config={"data_seed": 0}, epoch=3, phase=2,
                metrics={"macro_map": 0.25, "accuracy": 0.9, "per_class": []})
    ckpt.update(extra)
    save_checkpoint(ckpt, path)
    return path


def fake_tensorrt(version: str = "10.3.0") -> types.ModuleType:
    """Enough of TensorRT's Python API for export.tensorrt_build.build: the "parser" reads the ONNX with onnx and
    makes one layer per node (Q/DQ nodes become QUANTIZE / DEQUANTIZE layers, FP16 tensors HALF outputs); the
    "engine" is a few bytes naming the flags it was built with."""
    import onnx

    import importlib.machinery

    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)  # importlib.util.find_spec asks for it
    trt.__version__ = version
    trt.LayerType = types.SimpleNamespace(QUANTIZE="QUANTIZE", DEQUANTIZE="DEQUANTIZE", OTHER="OTHER")
    trt.DataType = types.SimpleNamespace(HALF="HALF", FLOAT="FLOAT")
    trt.BuilderFlag = types.SimpleNamespace(INT8="INT8", FP16="FP16")
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)

    class Logger:
        WARNING = 2

        def __init__(self, level=None):
            pass

    class Layer:
        def __init__(self, node, half: set[str]):
            self.type = {"QuantizeLinear": "QUANTIZE", "DequantizeLinear": "DEQUANTIZE"}.get(node.op_type, "OTHER")
            self.num_outputs = len(node.output)
            self._dtypes = ["HALF" if o in half else "FLOAT" for o in node.output]

        def get_output(self, i):
            return types.SimpleNamespace(dtype=self._dtypes[i])

    class Network:
        layers: list = []
        num_layers = 0

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            proto = onnx.shape_inference.infer_shapes(onnx.load(path))
            half = {v.name for v in list(proto.graph.value_info) + list(proto.graph.output)
                    if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
            half |= {n.output[0] for n in proto.graph.node if n.op_type == "Cast"
                     and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)}
            self.network.layers = [Layer(n, half) for n in proto.graph.node]
            self.network.num_layers = len(self.network.layers)
            return True

    class Config:
        def __init__(self):
            self.flags = set()

        def set_memory_pool_limit(self, *args):
            pass

        def set_flag(self, flag):
            self.flags.add(flag)

        def add_optimization_profile(self, profile):
            pass

        def create_timing_cache(self, data):
            return data

        def set_timing_cache(self, cache, ignore_mismatch):
            pass

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"cache")

    class Builder:
        def __init__(self, logger):
            self.config = None

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            self.config = Config()
            return self.config

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda *a: None)

        def build_serialized_network(self, network, config):
            return ("fake engine " + ",".join(sorted(config.flags))).encode()

    trt.Logger, trt.OnnxParser, trt.Builder = Logger, OnnxParser, Builder
    return trt


def fake_engine_backend():
    """A stand-in for runtime.backends.trt.TensorRTBackend: reads the engine's sidecar like the real one and runs
    the ONNX the engine was built from with ONNX Runtime."""
    import json
    from pathlib import Path

    from runtime.backends.ort import OrtBackend

    class FakeEngineBackend(OrtBackend):
        name = "tensorrt"

        def __init__(self, path, **options):
            path = Path(path)
            sidecar = json.loads(path.with_name(path.name + ".json").read_text())
            super().__init__(path.with_name(sidecar["onnx"]), threads=1)
            self.path = path
            self.metadata = self._read_metadata(sidecar["metadata"])

    return FakeEngineBackend
