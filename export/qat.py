"""Quantization-aware fine-tuning (QAT) for one QDQ recipe, mirrored from the QDQ graph itself.

Post-training quantization fixes the weights and picks scales; QAT fine-tunes the weights with the quantization in
the forward pass, so they learn to live with it (NVIDIA's pytorch-quantization / Model Optimizer guides: a few % of
the schedule at ~1 % of the learning rate, cosine decay). What is simulated here is *the shipped graph*: the plan is
read off the QDQ ONNX model that ONNX Runtime wrote for the variant (which tensors are quantized, with which scale
and zero point, which weights per channel), and the torch model gets torch's own fake-quantization ops
(`torch.fake_quantize_per_tensor_affine` / `_per_channel_affine`, straight-through gradients) at exactly those
tensors:
  - an activation quantized in the graph is fake-quantized at the input of the torch module that consumes it (a
    Conv's input is the same tensor whether or not the exporter folded a BatchNorm into it), or at the output of the
    module that produces it when its consumer is functional (a DenseNet concatenation's inputs);
  - tensors the graph quantizes between functional ops (a concatenation's output, a nearest upsampling of an already
    quantized tensor) hold values already on their scale's grid when every input shares that scale (the s8 recipe's
    shared concat ranges), so they need no op of their own; any other is listed in `Plan.missing` and refused;
  - Conv weights per output channel, symmetric, scale = max|w| / qmax (as ONNX Runtime computes it; per-channel
    symmetric quantization commutes with the per-channel BatchNorm scaling the exporter folds in), BatchNorm scales
    per tensor. int32 biases are not simulated (their rounding is below 1e-6 of the activations).
Activation scales stay those of the calibration (not learned), so after fine-tuning the same recipe and the same
calibration ranges quantize the tuned weights into a QDQ model that computes what the fake-quantized torch model
computed (`mirror_parity` checks it). BatchNorm statistics are frozen (eval mode), so the folded weights match.

Training scenes only: QAT draws from the checkpoint's own extra-training seed (train.config: a training seed, never
a calibration, accuracy-control or drift seed), time-boxed.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

# ONNX op -> the torch module class that runs it (a node whose scope is a module of another class is functional).
MODULE_OPS = {"Conv": "Conv2d", "BatchNormalization": "BatchNorm2d", "Relu": "ReLU", "MaxPool": "MaxPool2d",
              "AveragePool": "AvgPool2d", "Gemm": "Linear"}
# Ops that move values without changing them: their output is on the input's grid when they share one scale.
GRID_PRESERVING = ("Concat", "Resize", "MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice")


@dataclass(frozen=True)
class QuantSpec:
    """One per-tensor fake quantization: the graph's scale and zero point, and the integer range of its type."""
    scale: float
    zero_point: int
    qmin: int
    qmax: int


@dataclass
class Plan:
    """Where the QDQ graph quantizes, in torch module paths (relative to the model, e.g. 'encoder.features.conv0')."""
    inputs: dict[str, QuantSpec] = field(default_factory=dict)  # fake-quantize the module's input
    outputs: dict[str, QuantSpec] = field(default_factory=dict)  # fake-quantize the module's output
    conv_weights: dict[str, int] = field(default_factory=dict)  # per-channel symmetric weights: module -> qmax
    norm_weights: dict[str, int] = field(default_factory=dict)  # per-tensor symmetric BatchNorm scales: module -> qmax
    # per-output-channel symmetric Linear weights (a Gemm with transB, ONNX Runtime's per-channel axis 0): module -> qmax
    gemm_weights: dict[str, int] = field(default_factory=dict)
    on_grid: list[str] = field(default_factory=list)  # quantized tensors already on their grid (no op needed)
    missing: list[str] = field(default_factory=list)  # quantized tensors this plan cannot reproduce

    def summary(self) -> dict[str, int]:
        return {"activation_inputs": len(self.inputs), "activation_outputs": len(self.outputs),
                "conv_weights": len(self.conv_weights), "norm_weights": len(self.norm_weights),
                "gemm_weights": len(self.gemm_weights), "on_grid": len(self.on_grid), "missing": len(self.missing)}


def scope_map(model) -> tuple[dict[str, str], list[tuple[str, Any]]]:
    """{ONNX scope: torch module path} and the order torch calls its leaf modules in.

    The TorchScript exporter names a node by the chain of module *calls* that ran it, each module by its attribute
    name, a numbered child (Sequential / ModuleList) by its parent's name and the number: DenseNetBackbone.forward
    calls `features.conv0` directly, so its node is '/model/encoder/conv0/Conv'; a decoder conv is
    '/model/decoder/blocks.0/conv/conv.0/conv.0.0/Conv'. Recorded from one forward pass, so it follows the code."""
    import torch

    from dualpath import contract

    local: dict[str, str] = {}
    for path, _ in model.named_modules():
        if path:
            parent, _, last = path.rpartition(".")
            local[path] = f"{local[parent]}.{last}" if last.isdigit() and parent else last
    stack: list[str] = []  # scope keys of the calls in progress
    scopes: dict[str, str] = {}
    seen: dict[str, int] = {}  # calls per scope key: the exporter numbers the second one '_1', the third '_2'
    order: list[tuple[str, Any]] = []

    def enter(path, module):
        key = "/".join(stack[-1:] + [local[path]])
        count = seen.get(key, 0)
        seen[key] = count + 1
        key = key if count == 0 else f"{key}_{count}"
        stack.append(key)
        scopes[key] = path
        if not list(module.children()):
            order.append((path, module))

    handles = []
    for path, module in model.named_modules():
        if path:
            handles.append(module.register_forward_pre_hook(lambda m, a, p=path: enter(p, m)))
            handles.append(module.register_forward_hook(lambda m, a, o: stack.pop() and None))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, contract.IMAGE_SIZE, contract.IMAGE_SIZE))
    finally:
        for h in handles:
            h.remove()
    return scopes, order


def _scope(node_name: str) -> str:
    """'/model/encoder/conv0/Conv' -> 'encoder/conv0' (the export wraps the model as `model`)."""
    parts = node_name.strip("/").split("/")[:-1]
    return "/".join(parts[1:]) if parts[:1] == ["model"] else ""


def _range(dtype: int) -> tuple[int, int]:
    import onnx

    if dtype == onnx.TensorProto.INT8:
        return -128, 127
    if dtype == onnx.TensorProto.UINT8:
        return 0, 255
    raise ValueError(f"QDQ zero point of ONNX type {dtype}: only INT8 / UINT8 can be mirrored")


def plan_from_qdq(proto, model) -> Plan:
    """Read the QDQ graph of `model`'s export and say where torch must fake-quantize (see the module docstring)."""
    from onnx import numpy_helper

    g = proto.graph
    init = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i, t in enumerate(n.input):
            consumers.setdefault(t, []).append((n, i))
    modules = dict(model.named_modules())
    scopes, order = scope_map(model)
    tails = absorbed(order, {scopes.get(_scope(n.name)) for n in g.node if n.op_type in MODULE_OPS})

    def module_of(node):
        path = scopes.get(_scope(node.name))
        m = modules.get(path) if path else None
        return path if m is not None and type(m).__name__ == MODULE_OPS.get(node.op_type) else None

    def value(name: str) -> np.ndarray:
        return numpy_helper.to_array(init[name])

    plan = Plan()
    spec_of: dict[str, QuantSpec] = {}  # quantized float tensor -> its spec
    for dq in (n for n in g.node if n.op_type == "DequantizeLinear"):
        src = dq.input[0]
        if src in init:  # a quantized initializer: a weight, a BatchNorm scale, or an int32 bias
            if init[src].data_type not in (2, 3):  # uint8 / int8 only; int32 biases are not simulated
                continue
            qmax = int(np.abs(value(src)).max()) if value(src).size else 127
            qmax = 127 if qmax > 64 else 64  # 8-bit or ONNX Runtime's 7-bit (reduce_range) weights
            per_channel = value(dq.input[1]).size > 1
            axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
            for node, idx in consumers.get(dq.output[0], []):
                path = module_of(node)
                if path is None or idx != 1:
                    continue
                if node.op_type == "Conv":
                    plan.conv_weights[path] = qmax
                elif node.op_type == "Gemm" and per_channel:
                    transposed = any(a.name == "transB" and a.i for a in node.attribute)
                    if transposed and axis == 0:  # torch's Linear weight (out, in): per channel along dim 0
                        plan.gemm_weights[path] = qmax
                    else:
                        plan.missing.append(src)
                else:
                    plan.norm_weights[path] = qmax
            continue
        q = producer.get(src)
        if q is None or q.op_type != "QuantizeLinear":
            continue
        zp = init[dq.input[2]] if len(dq.input) > 2 and dq.input[2] in init else None
        qmin, qmax = _range(zp.data_type) if zp is not None else (-128, 127)
        spec = QuantSpec(float(value(dq.input[1])), int(value(dq.input[2])) if zp is not None else 0, qmin, qmax)
        tensor = q.input[0]
        spec_of[tensor] = spec
        functional = []
        for node, idx in consumers.get(dq.output[0], []):
            path = module_of(node)
            if path is not None and idx == 0:
                plan.inputs[path] = spec
            else:
                functional.append(node)
        if functional:
            src_node = producer.get(tensor)
            path = module_of(src_node) if src_node is not None else None
            if path is not None:
                plan.outputs[tails.get(path, path)] = spec
            elif src_node is not None and src_node.op_type in GRID_PRESERVING:
                plan.on_grid.append(tensor)  # checked below, once every spec is known
            else:
                plan.missing.append(tensor)
    for tensor in list(plan.on_grid):
        node = producer[tensor]
        ins = [t for t in node.input[:1 if node.op_type != "Concat" else None] if t in producer or t in spec_of]
        if all(spec_of.get(_source(t, producer)) == spec_of[tensor] for t in ins):
            continue
        plan.on_grid.remove(tensor)
        # A nearest Resize / pooling that opens a module (the decoder block's upsampling of its input), its float
        # input quantized only after it: quantizing element-wise commutes with copying elements, so the module's
        # input is fake-quantized instead (its first argument: the tensor comes from outside the module's scope).
        block = scopes.get(_scope(node.name))
        src = producer.get(node.input[0])
        outside = src is None or not _scope(src.name).startswith(_scope(node.name) + "/") and \
            _scope(src.name) != _scope(node.name)
        if node.op_type in ("Resize", "MaxPool") and block is not None and outside and block not in plan.inputs:
            plan.inputs[block] = spec_of[tensor]
        else:
            plan.missing.append(tensor)
    return plan


def _source(tensor: str, producer: dict) -> str:
    """The float tensor behind a DequantizeLinear output (itself otherwise)."""
    dq = producer.get(tensor)
    if dq is not None and dq.op_type == "DequantizeLinear":
        q = producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":
            return q.input[0]
    return tensor


def absorbed(order: list[tuple[str, Any]], in_graph: set) -> dict[str, str]:
    """Conv -> the last module the exporter / quantizer folded into it: a BatchNorm2d with no node of its own, and a
    ReLU that ONNX Runtime's u8 recipe absorbs into the Conv (its uint8 range clips at 0). The Conv's ONNX output is
    that module's torch output."""
    tails: dict[str, str] = {}
    for i, (path, module) in enumerate(order):
        if type(module).__name__ != "Conv2d":
            continue
        last = path
        for nxt_path, nxt in order[i + 1:]:
            if type(nxt).__name__ not in ("BatchNorm2d", "ReLU") or nxt_path in in_graph:
                break
            last = nxt_path
        tails[path] = last
    return tails


# ------------------------------------------------------------------------------------------ fake quantization


def _fq_act(x, spec: QuantSpec):
    import torch

    return torch.fake_quantize_per_tensor_affine(x, spec.scale, spec.zero_point, spec.qmin, spec.qmax)


def symmetric_weight_quantizer(qmax: int, per_channel: bool):
    """Parametrization: a weight as the graph holds it, symmetric with scale max|w| / qmax per output channel (Conv
    weights) or per tensor (BatchNorm scales), as ONNX Runtime computes it."""
    import torch
    from torch import nn

    class SymmetricFakeQuant(nn.Module):
        def forward(self, w):
            amax = w.detach().abs().amax(dim=tuple(range(1, w.dim()))) if per_channel else w.detach().abs().max()
            scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax)).float().reshape(-1)
            zero = torch.zeros(scale.numel(), dtype=torch.int32, device=w.device)
            if per_channel:
                return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -qmax, qmax)
            return torch.fake_quantize_per_tensor_affine(w, scale, zero, -qmax, qmax)

    return SymmetricFakeQuant()


@contextlib.contextmanager
def fake_quantized(model, plan: Plan) -> Iterator[Any]:
    """The model with the plan's fake quantization in place; everything removed (float weights kept) on exit."""
    from torch.nn.utils import parametrize

    if plan.missing:
        raise ValueError(f"the QDQ graph quantizes {len(plan.missing)} tensors the torch model cannot mirror "
                         f"(first: {plan.missing[0]}); QAT would train for another graph")
    modules = dict(model.named_modules())
    handles = []
    try:
        for path, spec in plan.inputs.items():
            handles.append(modules[path].register_forward_pre_hook(
                lambda _m, args, spec=spec: (_fq_act(args[0], spec), *args[1:])))
        for path, spec in plan.outputs.items():
            handles.append(modules[path].register_forward_hook(lambda _m, _a, out, spec=spec: _fq_act(out, spec)))
        for path, qmax in {**plan.conv_weights, **plan.gemm_weights}.items():
            parametrize.register_parametrization(modules[path], "weight", symmetric_weight_quantizer(qmax, True))
        for path, qmax in plan.norm_weights.items():
            parametrize.register_parametrization(modules[path], "weight", symmetric_weight_quantizer(qmax, False))
        yield model
    finally:
        for h in handles:
            h.remove()
        for path in [*plan.conv_weights, *plan.gemm_weights, *plan.norm_weights]:
            if parametrize.is_parametrized(modules[path], "weight"):
                parametrize.remove_parametrizations(modules[path], "weight", leave_parametrized=False)


def mirror_parity(model, plan: Plan, qdq_path: Path, images: np.ndarray) -> dict[str, float]:
    """max |torch fake-quantized - QDQ ONNX| on `images` (uint8 NHWC), the QDQ graph run as written (ONNX Runtime
    with graph optimizations off, so its Q/DQ ops are the float maths the fake quantization simulates)."""
    import onnxruntime as ort
    import torch

    from dualpath import contract

    x = contract.preprocess(images)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(qdq_path), opts, providers=["CPUExecutionProvider"])
    probs_q, recon_q = sess.run(list(contract.OUTPUT_NAMES), {contract.INPUT_NAME: x})
    with torch.no_grad(), fake_quantized(model, plan):
        out = model(torch.from_numpy(x))
    probs_t, recon_t = torch.sigmoid(out.logits).numpy(), out.recon.numpy()
    return {"probs_max_abs_diff": float(np.abs(probs_t - probs_q).max()),
            "probs_mean_abs_diff": float(np.abs(probs_t - probs_q).mean()),
            "recon_max_abs_diff": float(np.abs(recon_t - recon_q).max()),
            "recon_mean_abs_diff": float(np.abs(recon_t - recon_q).mean()), "n": int(len(images))}


# ------------------------------------------------------------------------------------------ fine-tuning


OBJECTIVES = ("train", "distill", "both")
QAT_MODES = ("auto", "always", "never")  # auto: accuracy control's fallback when post-training quantization misses
DEFAULT_MINUTES = 4.0  # QAT's time box: the `cpu` model's tuning and rebuilds fit ~5 minutes on 2 cores


@dataclass(frozen=True)
class QATConfig:
    minutes: float = 4.0  # wall-clock box for the fine-tuning steps (the `cpu` model fits ~5 minutes with export)
    lr_fraction: float = 0.01  # peak lr = this x the checkpoint's phase-2 lr (NVIDIA's QAT guides: ~1 %)
    batch_size: int = 32
    pool: int = 4096  # training scenes rendered once and cycled (from the checkpoint's extra-training seed)
    probe_steps: int = 3  # steps timed to size the schedule to the time box
    max_steps: int = 0  # 0: as many as the time box holds
    # "train": the checkpoint's training loss on the scenes' labels and clean images; "distill": the same loss with
    # the FP32 model's own probabilities and reconstruction as targets (what the drift gate compares against);
    # "both": their sum.
    objective: str = "train"
    seed: int = 0
    threads: int = 0  # torch threads (0: leave torch's default)

    def __post_init__(self) -> None:
        if not (isinstance(self.minutes, (int, float)) and self.minutes > 0):
            raise ValueError(f"--qat-minutes must be > 0, got {self.minutes!r}")
        if not 0 < self.lr_fraction <= 1:
            raise ValueError(f"QAT lr fraction must be in (0, 1], got {self.lr_fraction!r}")
        for name in ("batch_size", "pool", "probe_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"QAT {name} must be >= 1, got {getattr(self, name)!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"QAT objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.max_steps < 0:
            raise ValueError(f"QAT max_steps must be >= 0, got {self.max_steps!r}")


def training_scenes(train_config: dict, n: int, workers: int = 1) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """n training scenes for QAT: the checkpoint's extra-training seed (a training seed by construction, checked by
    train.config: never a calibration, accuracy-control or drift seed), indices 0..n-1 (the extra scenes it
    trained on when it had them)."""
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import iter_chunks
    from train.config import TRAINING_SEEDS_END

    seed = train_config.get("extra_seed", 1)
    if not isinstance(seed, int) or not 0 <= seed < TRAINING_SEEDS_END or seed == train_config.get("data_seed"):
        raise ValueError(f"the checkpoint's extra_seed {seed!r} is not a training seed in [0, {TRAINING_SEEDS_END}) "
                         "apart from its data seed, so QAT has no training scenes it may use")
    parts = [arrays for _, arrays in iter_chunks(SceneConfig(), seed, n, workers)]  # the generator's own workers
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in ("noisy", "clean", "labels")}
    info = {"seed": seed, "indices": [0, n], "n": n,
            "trained_on": n <= int(train_config.get("extra_scenes") or 0)}
    return arrays, info


def finetune(model, plan: Plan, ckpt: dict, cfg: QATConfig, scenes: dict[str, np.ndarray],
             log: Callable[[str], None] = print, teacher=None) -> dict[str, Any]:
    """Fine-tune `model` in place with the plan's fake quantization and the checkpoint's own training loss (against
    the labels, or the `teacher`'s outputs: cfg.objective); the time box sets the number of steps (timed on the first
    cfg.probe_steps), cosine decay over them."""
    import torch

    from train.data import Normalizer
    from train.losses import MultitaskLoss

    tc = ckpt.get("train_config") or {}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    criterion = MultitaskLoss(cls_loss=tc.get("loss", "asl"), recon_weight=tc.get("recon_weight", 1.5),
                              cls_weight=tc.get("cls_weight", 0.5))
    peak = cfg.lr_fraction * float(tc.get("phase2_lr") or 1e-3)
    norm = Normalizer(torch.device("cpu"), channels_last=False)
    noisy, clean = torch.from_numpy(scenes["noisy"]), torch.from_numpy(scenes["clean"])
    labels = torch.from_numpy(scenes["labels"]).float()
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(noisy), generator=gen)
    model.eval()  # BatchNorm statistics frozen (the graph folds them), dropout off: gradients still flow
    for p in model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(model.parameters(), lr=peak)
    budget = cfg.minutes * 60.0
    losses: list[float] = []
    total_steps, step, t0 = cfg.max_steps or 0, 0, time.perf_counter()
    with fake_quantized(model, plan):
        while True:
            if step == cfg.probe_steps and not cfg.max_steps:
                per_step = (time.perf_counter() - t0) / step
                total_steps = max(step + 1, int(budget / per_step))
                log(f"QAT: {per_step:.2f} s a step, {total_steps} steps in {cfg.minutes:g} min "
                    f"(batch {cfg.batch_size}, peak lr {peak:.2g}, cosine)")
            if total_steps and step >= total_steps:
                break
            if time.perf_counter() - t0 > budget * 1.15 and step >= cfg.probe_steps:
                log(f"QAT: stopped at step {step} of {total_steps}: past the time box")
                break
            horizon = total_steps or max(cfg.probe_steps, 1) * 100
            lr = peak * 0.5 * (1 + math.cos(math.pi * min(step, horizon) / horizon))
            for group in optimizer.param_groups:
                group["lr"] = lr
            start = (step * cfg.batch_size) % len(order)
            idx = order[start:start + cfg.batch_size]
            if len(idx) < cfg.batch_size:
                idx = torch.cat([idx, order[:cfg.batch_size - len(idx)]])
            x = norm.inputs(noisy[idx])
            out = model(x)
            total = 0.0
            if cfg.objective in ("train", "both"):
                total = total + criterion(out, norm.targets(clean[idx]), labels[idx])[0]
            if cfg.objective in ("distill", "both"):
                with torch.no_grad():
                    ref = teacher(x)
                total = total + distill(out, ref, criterion)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            losses.append(float(total.detach()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"QAT loss became {losses[-1]} at step {step}; try a lower lr fraction")
            step += 1
    for p in model.parameters():
        p.requires_grad_(False)
    seconds = time.perf_counter() - t0
    first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
    log(f"QAT: {step} steps in {seconds / 60:.1f} min, training loss {first:.4f} -> {last:.4f}")
    return {"steps": step, "seconds": round(seconds, 1), "peak_lr": peak, "batch_size": cfg.batch_size,
            "loss_first": first, "loss_last": last, "scenes_seen": step * cfg.batch_size, "config": asdict(cfg),
            "loss": tc.get("loss", "asl"), "objective": cfg.objective}


def distill(out, ref, criterion):
    """The training loss's weights with the FP32 model's outputs as targets: BCE to its probabilities (soft labels),
    MSE to its reconstruction."""
    import torch.nn.functional as F

    cls = F.binary_cross_entropy_with_logits(out.logits.float(), ref.logits.sigmoid().float())
    return criterion.cls_weight * cls + criterion.recon_weight * F.mse_loss(out.recon.float(), ref.recon.float())


def write_tuned_fp32(model, source_fp32: Path, dst: Path, opset: int, exporter: str) -> None:
    """The tuned model's FP32 ONNX, with the source's metadata; refused unless its tensors are the source's (the
    calibration ranges, keyed by tensor name, must apply to it unchanged)."""
    import onnx

    from export import onnx_fp32

    raw = dst.with_name(dst.stem + ".raw.onnx")
    onnx_fp32.export_onnx(model, raw, opset, exporter)
    proto = onnx_fp32.simplify(onnx.load(str(raw)))
    raw.unlink()
    src = onnx.load(str(source_fp32))
    ours, theirs = ({o for n in p.graph.node for o in n.output} for p in (proto, src))
    if ours != theirs:
        raise RuntimeError(f"the QAT-tuned FP32 graph has other tensors than {source_fp32.name} "
                           f"({len(ours ^ theirs)} differ): the calibration ranges would not apply")
    del proto.metadata_props[:]
    proto.metadata_props.extend(src.metadata_props)
    onnx.save(proto, str(dst))


def tune(model, ckpt: dict, qdq_path: Path, source_fp32: Path, dst_fp32: Path, cfg: QATConfig, parity_images,
         opset: int, exporter: str, workers: int = 1, log: Callable[[str], None] = print) -> tuple[Any, dict]:
    """QAT of a copy of `model` on the mirror of the QDQ graph at qdq_path; writes the tuned FP32 ONNX to dst_fp32.
    Returns (the tuned model, its record for the manifest)."""
    import copy

    import onnx

    tuned = copy.deepcopy(model)
    plan = plan_from_qdq(onnx.load(str(qdq_path)), tuned)
    before = mirror_parity(tuned, plan, qdq_path, parity_images)
    log(f"QAT: mirrored {qdq_path.name}: {plan.summary()}; torch vs the QDQ graph as written on {before['n']} scenes: "
        f"probs mean |diff| {before['probs_mean_abs_diff']:.1e} (max {before['probs_max_abs_diff']:.1e}), recon "
        f"{before['recon_mean_abs_diff']:.1e} (max {before['recon_max_abs_diff']:.1e}); ORT and torch round a few "
        "accumulations differently and the next Q/DQ rounds those one step apart, so deep graphs differ by a few steps")
    scenes, info = training_scenes(ckpt.get("train_config") or {}, cfg.pool, workers)
    run = finetune(tuned, plan, ckpt, cfg, scenes, log, teacher=model.eval())
    write_tuned_fp32(tuned, source_fp32, dst_fp32, opset, exporter)
    return tuned, {"mirrors": qdq_path.name, "plan": plan.summary(), "mirror_parity_before": before,
                   "training_scenes": info, **run}


def check_mirror(tuned, qdq_path: Path, images: np.ndarray) -> dict[str, float]:
    """After the rebuild: the QDQ model the recipe wrote from the tuned weights against the tuned model with its fake
    quantization (the graph it trained for)."""
    import onnx

    return mirror_parity(tuned, plan_from_qdq(onnx.load(str(qdq_path)), tuned), qdq_path, images)
