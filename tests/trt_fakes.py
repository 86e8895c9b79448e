"""Fake `tensorrt` and `cuda.bindings.runtime` modules that record their calls (Polygraphy's tests do the same), so
the TensorRT path, build -> sidecar -> load -> infer -> close, runs on machines without TensorRT or a GPU.

The builder's "parser" reads the ONNX with onnx and makes one layer per node (Q/DQ nodes become QUANTIZE / DEQUANTIZE
layers, FP16 tensors HALF outputs); the "engine" names the flags and carries the ONNX it was built from, and executing it
runs that ONNX with ONNX Runtime on the bytes in fake device memory (bytearrays), so infer()'s copies are checked for real.

    gpu = FakeGpu("10.3.0").install(monkeypatch)    # sys.modules["tensorrt"], ["cuda.bindings.runtime"]...
    ...
    assert ("cudaStreamDestroy", stream) in gpu.calls
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import itertools
import json
import sys
import types

import numpy as np

ENGINE_MAGIC = b"fake engine "
H2D, D2H = 1, 2


class FakeGpu:
    def __init__(self, version: str = "10.3.0") -> None:
        self.calls: list[tuple] = []
        self.memory: dict[int, bytearray] = {}  # device pointer -> its bytes
        self.streams: set[int] = set()  # streams created and not destroyed
        self._pointers = itertools.count(0x1000, 0x1000)
        self.tensorrt = _tensorrt(self, version)
        self.cuda = _cuda_runtime(self)

    def install(self, monkeypatch) -> "FakeGpu":
        cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
        cuda.bindings, bindings.runtime = bindings, self.cuda
        for name, module in (("tensorrt", self.tensorrt), ("cuda", cuda), ("cuda.bindings", bindings),
                             ("cuda.bindings.runtime", self.cuda)):
            monkeypatch.setitem(sys.modules, name, module)
        return self

    def record(self, *call) -> None:
        self.calls.append(call)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def allocate(self, nbytes: int) -> int:
        ptr = next(self._pointers)
        self.memory[ptr] = bytearray(nbytes)
        return ptr


def fake_tensorrt(version: str = "10.3.0") -> types.ModuleType:
    """The fake tensorrt module alone (the export's build step needs no device memory)."""
    return FakeGpu(version).tensorrt


def _cuda_runtime(gpu: FakeGpu) -> types.ModuleType:
    """cuda-python's runtime API as TensorRTBackend uses it: every call returns (error, value...)."""
    rt = types.ModuleType("cuda.bindings.runtime")
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=H2D, cudaMemcpyDeviceToHost=D2H)

    def cudaSetDevice(device):
        gpu.record("cudaSetDevice", device)
        return (0,)

    def cudaStreamCreate():
        stream = next(gpu._pointers)
        gpu.streams.add(stream)
        gpu.record("cudaStreamCreate", stream)
        return 0, stream

    def cudaStreamDestroy(stream):
        gpu.record("cudaStreamDestroy", stream)
        gpu.streams.discard(stream)
        return (0,)

    def cudaMalloc(nbytes):
        ptr = gpu.allocate(nbytes)
        gpu.record("cudaMalloc", nbytes)
        return 0, ptr

    def cudaFree(ptr):
        gpu.record("cudaFree", ptr)
        del gpu.memory[ptr]
        return (0,)

    def cudaMemcpyAsync(dst, src, nbytes, kind, stream):
        gpu.record("cudaMemcpyAsync", kind, nbytes)
        assert stream in gpu.streams, "copy on a stream that does not exist"
        if kind == H2D:
            gpu.memory[dst][:nbytes] = ctypes.string_at(src, nbytes)
        else:
            ctypes.memmove(dst, bytes(gpu.memory[src][:nbytes]), nbytes)
        return (0,)

    def cudaStreamSynchronize(stream):
        gpu.record("cudaStreamSynchronize", stream)
        return (0,)

    for fn in (cudaSetDevice, cudaStreamCreate, cudaStreamDestroy, cudaMalloc, cudaFree, cudaMemcpyAsync,
               cudaStreamSynchronize):
        setattr(rt, fn.__name__, fn)
    return rt


def _tensorrt(gpu: FakeGpu, version: str) -> types.ModuleType:
    import onnx

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
        def __init__(self, flags):
            self.flags, self.layers, self.num_layers, self.onnx = flags, [], 0, None

        def get_layer(self, i):
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            gpu.record("parse_from_file", path)
            proto = onnx.shape_inference.infer_shapes(onnx.load(path))
            half = {v.name for v in list(proto.graph.value_info) + list(proto.graph.output)
                    if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16}
            half |= {n.output[0] for n in proto.graph.node if n.op_type == "Cast"
                     and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute)}
            self.network.layers = [Layer(n, half) for n in proto.graph.node]
            self.network.num_layers, self.network.onnx = len(self.network.layers), path
            return True

    class Config:
        def __init__(self):
            self.flags, self.profiles = set(), []

        def set_memory_pool_limit(self, pool, size):
            gpu.record("set_memory_pool_limit", pool, size)

        def set_flag(self, flag):
            gpu.record("set_flag", flag)
            self.flags.add(flag)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile.shapes)

        def create_timing_cache(self, data):
            gpu.record("create_timing_cache", bytes(data))
            return data

        def set_timing_cache(self, cache, ignore_mismatch):
            pass

        def get_timing_cache(self):
            return types.SimpleNamespace(serialize=lambda: b"cache")

    class Profile:
        def __init__(self):
            self.shapes = {}

        def set_shape(self, name, smallest, usual, largest):
            gpu.record("set_shape", name, smallest, usual, largest)
            self.shapes[name] = [smallest, usual, largest]

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            gpu.record("create_network", flags)
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            gpu.record("build_serialized_network", sorted(config.flags))
            info = {"onnx": network.onnx, "flags": sorted(config.flags), "profiles": config.profiles}
            with open(network.onnx, "rb") as f:
                return ENGINE_MAGIC + json.dumps(info).encode() + b"\n" + f.read()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            gpu.record("deserialize_cuda_engine", len(data))
            if not data.startswith(ENGINE_MAGIC):
                return None
            info, _, model = data[len(ENGINE_MAGIC):].partition(b"\n")
            return Engine(json.loads(info), model)

    class Engine:
        def __init__(self, info, model: bytes):
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.info = info
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

        def create_execution_context(self):
            gpu.record("create_execution_context")
            return Context(self.session)

    class Context:
        def __init__(self, session):
            self.session, self.addresses, self.input_shape = session, {}, None

        def set_input_shape(self, name, shape):
            gpu.record("set_input_shape", name, tuple(shape))
            self.input_shape = tuple(shape)

        def get_tensor_shape(self, name):
            (out,) = [o for o in self.session.get_outputs() if o.name == name]
            return tuple(d if isinstance(d, int) else self.input_shape[0] for d in out.shape)

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream):
            gpu.record("execute_async_v3", stream)
            (inp,) = self.session.get_inputs()
            count = int(np.prod(self.input_shape))
            x = np.frombuffer(bytes(gpu.memory[self.addresses[inp.name]]), np.float32, count).reshape(self.input_shape)
            for out, value in zip(self.session.get_outputs(), self.session.run(None, {inp.name: x})):
                data = np.ascontiguousarray(value, np.float32).tobytes()
                gpu.memory[self.addresses[out.name]][:len(data)] = data
            return True

    trt.Logger, trt.OnnxParser, trt.Builder, trt.Runtime = Logger, OnnxParser, Builder, Runtime
    return trt
