"""The export run: checkpoint -> FP32 ONNX (+ parity, enforced) -> QDQ INT8 ONNX -> OpenVINO FP32/INT8 -> FP16 ONNX
and OpenVINO IR -> TensorRT engines (or their build script) -> drift reports of every INT8 / FP16 artifact ->
benchmark table -> manifest.json. Built in a staging folder and published at the end (export.folder): the folder then
holds exactly what the manifest lists."""
from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.artifacts import (FP16_ONNX, FP16_XML, FP32_ONNX, FP32_XML, INT8_XML, RANGES, SHARED_RANGES,
                              int8_onnx_name, ranges_for)
from export.atomic import atomic_path, ensure_writable_folder, file_sha256, write_json, write_text
from export.config import ExportConfig
from export.metadata import check_checkpoint_contract, library_versions, model_metadata
from export import int8_checks
from export.qat_step import QatSource, rebuild_all

class ExportFailed(Exception):
    """A verdict on the run (exit 1): the artifacts it built are not what the checkpoint computes."""


def load_checked_checkpoint(path: Path):
    from train.checkpoint import load_model

    if not Path(path).is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m train --out runs/x` (runs/x/best.pt)")
    try:
        model, ckpt = load_model(path)
    except (ValueError, KeyError, RuntimeError) as e:  # torn file, foreign dict, state dict that does not fit
        raise ValueError(f"cannot use checkpoint {path}: {e}") from None
    check_checkpoint_contract(ckpt, str(path))
    return model, ckpt


def check_seeds(ckpt: dict, config: ExportConfig) -> None:
    """No scene this export calibrates, tunes or measures on is one the checkpoint was trained on (its data set,
    extra scenes and backbone pretraining stream, whatever their seeds; dualpath.seeds): ValueError otherwise."""
    from calibration import ACCURACY_CONTROL_SEED
    from dualpath.seeds import SceneRange, check_disjoint, training_ranges
    from runtime.drift.sets import DRIFT_SEED

    train_config = ckpt.get("train_config")
    used = training_ranges(train_config if isinstance(train_config, dict) else None)
    wanted = [SceneRange(DRIFT_SEED, 0, config.parity_n, role="parity scenes")]
    if config.int8:
        wanted.append(SceneRange(config.calib_seed, 0, config.calib_n, role="calibration scenes (--calib-seed)"))
    if config.accuracy_control:
        wanted.append(SceneRange(ACCURACY_CONTROL_SEED, 0, min(config.drift_n, 500), role="accuracy-control scenes"))
    if any(a.reference for a in config.artifacts.values()):
        n = max(config.drift_n, config.sweep_n if config.severities else 0)
        wanted.append(SceneRange(DRIFT_SEED, 0, n, role="drift scenes"))
    check_disjoint(used, wanted, str(config.checkpoint),
                   fix=f"train on a data set of another seed (calibration uses {config.calib_seed}, accuracy control "
                       f"{ACCURACY_CONTROL_SEED}, drift {DRIFT_SEED}), or pass another --calib-seed")


def export_fp32_onnx(model, ckpt: dict, sha: str, config: ExportConfig, log: Callable[[str], None]) -> dict:
    import onnx

    from export import onnx_fp32

    path = config.out / FP32_ONNX
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dualpath-export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        onnx_fp32.export_onnx(model, raw, config.opset, config.exporter)
        proto = onnx_fp32.simplify(onnx.load(str(raw)))
    metadata = model_metadata(ckpt, sha, precision="fp32", opset=onnx_fp32.opset_of(proto), exporter=config.exporter)
    onnx_fp32.embed_metadata(proto, metadata)
    onnx_fp32.check_graph(proto)
    with atomic_path(path) as tmp_path:
        onnx.save(proto, str(tmp_path))
    write_json(config.out / "metadata.json", metadata.to_props())  # for the TensorRT build script on the device
    log(f"ONNX FP32: {path} (opset {onnx_fp32.opset_of(proto)}, {config.exporter} exporter, {time.perf_counter() - t0:.1f} s)")
    return {"opset": onnx_fp32.opset_of(proto), "exporter": config.exporter}


def parity_images(n: int) -> np.ndarray:
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range
    from runtime.drift.sets import DRIFT_SEED

    return render_range(SceneConfig(), DRIFT_SEED, 0, n)["noisy"]


def check_parity(model, config: ExportConfig, log) -> dict:
    from export.onnx_fp32 import parity
    from runtime.backends import load_backend

    with load_backend(config.out / FP32_ONNX, "onnxruntime", threads=config.threads) as be:
        result = parity(model, be, parity_images(config.parity_n))
    log(f"parity vs torch on {result['n']} scenes: probs max |diff| {result['probs_max_abs_diff']:.2e}, "
        f"recon max |diff| {result['recon_max_abs_diff']:.2e}")
    worst = max(result["probs_max_abs_diff"], result["recon_max_abs_diff"])
    result["tolerance"] = config.parity_tol
    if not worst <= config.parity_tol:  # NaN fails too
        raise ExportFailed(f"the FP32 ONNX model differs from torch by {worst:.3g} (tolerance {config.parity_tol:g}, "
                           f"{result['n']} scenes): the export is wrong; try --exporter dynamo or another --opset")
    return result


def calibration_batches(config: ExportConfig):
    from calibration import CalibrationBatches, CalibrationConfig, build_calibration_set

    calib = CalibrationConfig(n=config.calib_n, seed=config.calib_seed)
    ds = build_calibration_set(calib, config.data_root / calib.folder_name(), workers=config.workers)
    info = {"seed": ds.seed, "n": len(ds), "path": str(ds.path), "manifest_sha256": ds.manifest["files"]["noisy"]["sha256"],
            "method": config.calib_method}
    return CalibrationBatches.from_dataset(ds, calib.batch_size), info


def quantize_qdq(config: ExportConfig, batches, float_extra: list[str], log) -> dict[str, Any]:
    import onnx

    from export import quantize_onnx as q

    if not qdq_variants(config) and not config.accuracy_control:  # no QDQ model, none to rank layers on
        return {}
    fp32 = config.out / FP32_ONNX
    proto = onnx.load(str(fp32))
    with atomic_path(config.out / RANGES) as raw, atomic_path(config.out / SHARED_RANGES) as shared:
        q.calibrate(fp32, batches, config.calib_method, raw, shared)
    recipes = {}
    for name in qdq_variants(config):
        variant = q.VARIANTS[name]
        floats = variant.float_nodes(proto)
        path = config.out / int8_onnx_name(name)
        q.write_variant(fp32, path, config.out / ranges_for(variant), variant, config.calib_method, proto, float_extra)
        summary = q.qdq_summary(onnx.load(str(path)))
        recipes[path.name] = {
            "format": "QDQ", "activations": variant.activation, "symmetric_activations": variant.symmetric,
            "weights": "int8 per-channel symmetric", "calibration": config.calib_method, "target": variant.target,
            "placement": variant.placement, "shared_concat_ranges": variant.share_concat,
            "reduce_range_weights": variant.reduce_range, "float_head": variant.floats.head,
            "float_decoder_blocks": variant.floats.decoder_blocks, "kept_in_float": sorted(set(floats + float_extra)),
            "weights_from": "ptq",
            "graph": summary,
        }
        log(f"QDQ INT8 ({name}, {variant.target}): {path.name}, {summary['conv_gemm_int8']}/"
            f"{summary['conv_gemm_total']} conv/gemm in INT8")
    return recipes


def qdq_variants(config: ExportConfig) -> list[str]:
    """The QDQ variants this export writes (--qdq-variants' order; export.artifacts decides which)."""
    return [v for v in config.qdq_variants if int8_onnx_name(v) in config.artifacts]


def openvino_fp32(config: ExportConfig, log) -> None:
    from export import openvino_export as ovx
    from runtime.backends.metadata import ModelMetadata
    from runtime.backends.ov import onnx_props

    props = onnx_props(config.out / FP32_ONNX)
    ModelMetadata.from_props(props)
    ovx.save_ir(ovx.convert(config.out / FP32_ONNX), config.out / FP32_XML, props)
    log(f"OpenVINO FP32: {config.out / FP32_XML}")


def openvino_int8(config: ExportConfig, batches, float_extra: list[str], log, source: Path | None = None) -> dict[str, Any]:
    """NNCF's INT8 IR of the FP32 ONNX (or of `source`, the QAT-tuned FP32 ONNX: same graph, other weights)."""
    import onnx

    from export import openvino_export as ovx
    from export.quantize_onnx import OPENVINO_FLOATS, float_nodes
    from runtime.backends.ov import onnx_props

    floats = float_nodes(onnx.load(str(config.out / FP32_ONNX)), recipe=OPENVINO_FLOATS) + float_extra
    props = onnx_props(config.out / FP32_ONNX) | {"precision": json.dumps("int8-nncf")}
    model = ovx.quantize_int8(ovx.convert(source or config.out / FP32_ONNX), batches, floats, subset_size=config.calib_n,
                              activation_ranges=config.ov_ranges)
    ovx.save_ir(model, config.out / INT8_XML, props)
    log(f"OpenVINO INT8 (NNCF): {config.out / INT8_XML}")
    return {"format": "OpenVINO IR, NNCF post-training quantization", "preset": "mixed",
            "calibration": f"nncf {config.ov_ranges} activation ranges, min/max weights, fast bias correction",
            "activation_ranges": config.ov_ranges, "kept_in_float": sorted(set(floats)), "weights_from": "ptq"}


def qdq_source_for_openvino(config: ExportConfig) -> str:
    """The QDQ model the OpenVINO INT8 IR is converted from (--ov-int8 qdq): u8, else s8; '' for NNCF's own."""
    if config.ov_int8 != "qdq":
        return ""
    written = qdq_variants(config)
    return next((int8_onnx_name(v) for v in ("u8", "s8") if v in written), "")


def openvino_from_qdq(config: ExportConfig, source: str, recipes: dict[str, Any], log) -> dict[str, Any]:
    """OpenVINO's own conversion of a QDQ model (its Q/DQ pairs become FakeQuantize, run as INT8 by the CPU plugin):
    the same graph, scales and float layers as that model, so the same drift (docs/measurements.md: on the seed-1
    `cpu` model NNCF's IR changed 5.4% of scenes' labels, this one 3.6%)."""
    from export import openvino_export as ovx
    from runtime.backends.ov import onnx_props

    props = onnx_props(config.out / FP32_ONNX) | {"precision": json.dumps("int8-qdq")}
    ovx.save_ir(ovx.convert(config.out / source), config.out / INT8_XML, props)
    log(f"OpenVINO INT8 (converted from {source}): {config.out / INT8_XML}")
    src = recipes.get(source, {})
    return {"format": f"OpenVINO IR converted from {source} (its Q/DQ as FakeQuantize)", "source": source,
            "calibration": src.get("calibration"), "placement": src.get("placement"),
            "kept_in_float": src.get("kept_in_float", []), "weights_from": src.get("weights_from", "ptq"),
            **({"qat": src["qat"]} if "qat" in src else {})}


def fp16_onnx(config: ExportConfig, log) -> dict[str, Any]:
    """FP16 ONNX with ONNX Runtime's converter (onnxruntime.transformers.float16): FP16 weights and compute, float32
    input and outputs (keep_io_types), so the runtime feeds it like the others. For ONNX Runtime GPU and as the
    TensorRT FP16 engine's source."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(config.out / FP32_ONNX)), keep_io_types=True)
    props = {p.key: p.value for p in proto.metadata_props} | {"precision": json.dumps("fp16")}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(config.out / FP16_ONNX) as tmp:
        onnx.save(proto, str(tmp))
    log(f"ONNX FP16: {config.out / FP16_ONNX}")
    return {"format": "ONNX FP16", "converter": "onnxruntime.transformers.float16.convert_float_to_float16",
            "io_types": "float32 (keep_io_types)", "target": "ONNX Runtime GPU; TensorRT FP16 engine source"}


def openvino_fp16(config: ExportConfig, log) -> dict[str, Any]:
    from export import openvino_export as ovx
    from runtime.backends.ov import onnx_props

    props = onnx_props(config.out / FP32_ONNX) | {"precision": json.dumps("fp16")}
    ovx.save_ir(ovx.convert(config.out / FP32_ONNX), config.out / FP16_XML, props, compress_to_fp16=True)
    log(f"OpenVINO FP16: {config.out / FP16_XML}")
    return {"format": "OpenVINO IR, FP16 weights", "converter": "openvino.save_model(compress_to_fp16=True)",
            "target": "OpenVINO GPU / ARM CPU (FP16 compute); x86 CPUs decompress to FP32"}


def artifact_graph(path: Path) -> dict[str, Any]:
    """The recipe's graph counts, read back from the file on disk."""
    if path.suffix == ".xml":
        import openvino as ov

        from export.openvino_export import ir_summary

        return ir_summary(ov.Core().read_model(str(path)))
    import onnx

    from export.quantize_onnx import qdq_summary

    return qdq_summary(onnx.load(str(path)))


def refresh_recipes(out: Path, recipes: dict[str, Any]) -> None:
    """Every quantized artifact's graph counts and float layers, recomputed from the written file."""
    for name, recipe in recipes.items():
        if name.endswith((".onnx", ".xml")) and (out / name).is_file() and "int8" in name:
            recipe["graph"] = artifact_graph(out / name)


def tensorrt_step(config: ExportConfig, log) -> dict[str, Any]:
    """Build the engines (INT8 from the s8 QDQ ONNX, FP16 from the FP16 ONNX) where TensorRT runs; otherwise leave
    the script and the commands to run on the device."""
    from runtime.backends import trt_engine

    sources = {a.name: a.source for a in config.artifacts.values() if a.format == "tensorrt"}
    script = config.out / "build_tensorrt_engine.py"
    with atomic_path(script) as tmp:
        shutil.copyfile(trt_engine.__file__, tmp)  # standard library only: it runs alone on the device
    commands = {engine: trt_engine.command(onnx_name, engine, config.max_batch) for engine, onnx_name in sources.items()}
    trtexec = [f"trtexec --onnx={onnx_name} --saveEngine={engine} {'--int8 ' if 'int8' in engine else ''}--fp16 "
               f"--minShapes=image:1x3x64x64 --optShapes=image:1x3x64x64 --maxShapes=image:{config.max_batch}x3x64x64 "
               "--timingCacheFile=tensorrt.cache" for engine, onnx_name in sources.items()]
    write_text(config.out / "build_tensorrt_engine.sh",
               "#!/bin/sh\n# Run on the target device (TensorRT 10.x / 11.x): an engine is tied to its GPU and version.\n"
               "set -e\ncd \"$(dirname \"$0\")\"\n" + "\n".join(commands.values())
               + "\n# equivalent without the sidecars (prefer the script):\n" + "".join(f"# {c}\n" for c in trtexec))
    result: dict[str, Any] = {"built": False, "commands": commands, "command": "\n".join(commands.values()),
                              "script": script.name, "engines": {}}
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        log(f"TensorRT: not installed here; on the device run: sh {config.out / 'build_tensorrt_engine.sh'}")
        return result | {"reason": "tensorrt is not importable on the export machine"}
    metadata = json.loads((config.out / "metadata.json").read_text())
    for engine, onnx_name in sources.items():
        sidecar = trt_engine.build(config.out / onnx_name, config.out / engine, metadata, config.max_batch,
                                   timing_cache=config.out / "tensorrt.cache")
        precision, target = json.loads(sidecar.metadata["precision"]), sidecar.target
        log(f"TensorRT engine: {config.out / engine} ({precision}, {target.gpu_name or 'unnamed GPU'}, "
            f"TensorRT {target.tensorrt_version})")
        result["engines"][engine] = {"onnx": onnx_name, "precision": precision, **dataclasses.asdict(target)}
    return result | {"built": True}


def _violations_fn(config: ExportConfig, reference: Path, budgets, images_labels_clean):
    """artifact -> {violations, worst share of a budget} against `reference` on the accuracy-control scenes."""
    from runtime.backends import load_backend
    from runtime.drift.budgets import check, scaled, worst_usage
    from runtime.drift.compare import head_metrics, output_drift, run_backend

    budgets = scaled(budgets, config.control_margin)

    noisy, labels, clean = images_labels_clean
    with load_backend(reference, threads=config.threads) as ref:
        out_ref = run_backend(ref, noisy)
    m_ref = head_metrics(labels, clean, out_ref)

    def evaluate(artifact: Path) -> dict[str, Any]:
        with load_backend(artifact, threads=config.threads) as cand:
            out = run_backend(cand, noisy)
        m, drift = head_metrics(labels, clean, out), output_drift(labels, out_ref, out)  # label flips budgeted too
        return {"violations": check(budgets, m_ref, m, outputs=drift), "worst": worst_usage(budgets, m_ref, m, drift),
                "label_flip_rate": drift["label_flip_rate"]}

    return evaluate


def accuracy_control(config: ExportConfig, batches, budgets, log, qat_source=None) -> dict[str, Any]:
    """For each INT8 artifact past its budget (validation scenes): post-training quantization first; then, with a
    `qat_source` (export.qat_step), the same recipe on QAT-tuned weights; then the most sensitive layers back to float
    (on the QAT weights when QAT ran), never below config.min_int8_share of its convolutions / gemms in INT8."""
    import onnx

    from calibration import ACCURACY_CONTROL_SEED
    from export import accuracy_control as ac
    from export.quantize_onnx import VARIANTS, float_nodes, write_variant
    from runtime.drift.sets import drift_dataset

    val = drift_dataset(config.data_root, min(config.drift_n, 500), seed=ACCURACY_CONTROL_SEED, workers=config.workers)
    data = (val.noisy, val.labels, val.clean)
    fp32 = config.out / FP32_ONNX
    proto = onnx.load(str(fp32))
    floats = float_nodes(proto)
    weighted = {n.name for n in proto.graph.node if n.op_type in ("Conv", "Gemm")}
    ranking = functools.cache(lambda: rank_layers(config, fp32, batches, floats))  # only when a layer round runs
    recon_path = [n.name for n in proto.graph.node if n.name.startswith(ac.RECON_SCOPES)]
    results = {}
    targets = {a.name: (config.out / a.reference, a.variant) for a in config.artifacts.values() if a.controlled
               and not (a.name == INT8_XML and qdq_source_for_openvino(config))}  # that one follows its QDQ model
    for name, (reference, variant) in targets.items():
        evaluate = _violations_fn(config, reference, budgets, data)
        start = evaluate(config.out / name)
        graph = artifact_graph(config.out / name)
        max_float = ac.allowed_in_float(graph["conv_gemm_int8"], graph["conv_gemm_total"], config.min_int8_share)
        shipped = "qat" if qat_source is not None and qat_source.path is not None and config.qat == "always" else "ptq"
        if not start["violations"]:
            results[name] = {"met": True, "kept_in_float": [], "rounds": [{"layers_in_float": 0, **start}],
                             "max_layers_in_float": max_float, "best_round": 0, "violations": [], "shipped": shipped}
            log(f"accuracy control {name}: {config.control_margin:g} x budgets met as built ({shipped.upper()}, "
                f"{start['worst']:.0%} of the tightest used) on {len(val)} validation scenes")
            continue
        other, rebuild_ptq = [], False
        if qat_source is not None and shipped == "ptq":
            log(f"accuracy control {name}: post-training quantization misses ({'; '.join(start['violations'])}): "
                "quantization-aware fine-tuning")
            ptq_round = {"layers_in_float": 0, "weights": "ptq", **start}
            qat_round = {"layers_in_float": 0, "weights": "qat", **evaluate(qat_source.rebuild(name, variant, [], batches))}
            if not qat_round["violations"]:
                results[name] = {"met": True, "kept_in_float": [], "rounds": [ptq_round, qat_round],
                                 "max_layers_in_float": max_float, "best_round": 1, "violations": [], "shipped": "qat"}
                log(f"accuracy control {name}: {config.control_margin:g} x budgets met with QAT "
                    f"({qat_round['worst']:.0%} of the tightest used) on {len(val)} validation scenes")
                continue
            # The layer rounds go on from whichever weights came closer (QAT can move a model further from FP32).
            if qat_round["worst"] < ptq_round["worst"]:
                shipped, start, other = "qat", qat_round, [ptq_round]
            else:
                start, other = ptq_round, [qat_round]
                rebuild_ptq = True
            log(f"accuracy control {name}: QAT {'; '.join(qat_round['violations'])}; layer rounds on the "
                f"{shipped.upper()} weights")

        def build(kept: list[str], name=name, variant=variant) -> Path:
            if shipped == "qat":
                return qat_source.rebuild(name, variant, kept, batches)
            if variant is not None:
                write_variant(fp32, config.out / name, config.out / ranges_for(VARIANTS[variant]), VARIANTS[variant],
                              config.calib_method, proto, kept)
            else:
                openvino_int8(config, batches, kept, lambda _: None)
            return config.out / name

        if rebuild_ptq:  # the file on disk holds the QAT round: back to post-training quantization
            build([])
        results[name] = ac.control(ranking(), build, evaluate, start, fallback=recon_path, max_float=max_float,
                                   weighted=weighted)
        r = results[name]
        r["shipped"] = shipped
        r["rounds"][:0] = other  # the round not continued from, first; then control's own rounds
        r["best_round"] += len(other)
        log(f"accuracy control {name}: {len(r['kept_in_float'])} layers back in float (at most {max_float}, keeping "
            f">= {config.min_int8_share:.0%} of {graph['conv_gemm_total']} conv/gemm INT8), {config.control_margin:g} x "
            f"budgets {'met' if r['met'] else 'NOT met: ' + '; '.join(r['violations'])} on {len(val)} validation scenes")
    return {"validation": {"seed": ACCURACY_CONTROL_SEED, "n": len(val)}, "budget_share": config.control_margin,
            "min_int8_share": config.min_int8_share, "artifacts": results}


def rank_layers(config: ExportConfig, fp32: Path, batches, floats: list[str]) -> list[tuple[str, float]]:
    """Layers by how much INT8 hurts them, measured on the first QDQ model this export writes; an export without one
    (OpenVINO alone) ranks on a temporary one."""
    import onnx

    from export import accuracy_control as ac
    from export.quantize_onnx import VARIANTS, write_variant

    probes = qdq_variants(config)
    if probes:
        return ac.rank_layers(fp32, config.out / int8_onnx_name(probes[0]), list(batches)[:4], set(floats))
    variant = config.qdq_variants[0]
    with tempfile.TemporaryDirectory(prefix="dualpath-probe-") as tmp:
        probe = Path(tmp) / int8_onnx_name(variant)  # as the variant would have been written
        write_variant(fp32, probe, config.out / ranges_for(VARIANTS[variant]), VARIANTS[variant], config.calib_method,
                      onnx.load(str(fp32)))
        return ac.rank_layers(fp32, probe, list(batches)[:4], set(floats))


def apply_control(recipes: dict[str, Any], control: dict[str, Any], qat_source=None) -> None:
    from export.qat_step import mark

    for name, r in control["artifacts"].items():
        if name in recipes:
            recipes[name]["kept_in_float"] = sorted(set(recipes[name]["kept_in_float"]) | set(r["kept_in_float"]))
            mark(recipes, name, qat_source if r.get("shipped") == "qat" else None)


def drift_pairs(config: ExportConfig) -> dict[str, str]:
    """Every INT8 / FP16 artifact this export wrote -> its FP32 reference (export.artifacts; an engine only where
    TensorRT built it)."""
    return {a.name: a.reference for a in config.artifacts.values() if a.reference and (config.out / a.name).is_file()}


def read_baseline(path: Path, names: list[str] | None = None) -> dict[str, dict]:
    """A previous export (its folder or manifest.json) -> {artifact: its drift.json}, read before anything is
    replaced (the baseline may be the folder being exported into)."""
    from dualpath.files import inside, read_json

    manifest_path = path / "manifest.json" if path.is_dir() else path
    manifest = read_json(manifest_path, ValueError, missing=f"no export manifest at {manifest_path}; --baseline takes "
                         "the folder (or manifest.json) of an export you accepted",
                         corrupt=f"{manifest_path} is not valid JSON ({{error}})")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("drift"), dict) or not manifest["drift"]:
        raise ValueError(f"{manifest_path} holds no drift reports; --baseline needs an export made with --int8 or --fp16")
    reports = {}
    for name, r in manifest["drift"].items():
        report = r.get("report") if isinstance(r, dict) else None
        what = f"{manifest_path}'s drift report of {name}"
        inside(manifest_path.parent, report, what)  # a relative folder name, then its drift.json, links resolved
        reports[name] = read_json(inside(manifest_path.parent, f"{report}/drift.json", what), ValueError,
                                  missing=f"the baseline's drift report {report}/drift.json is missing; export it again",
                                  corrupt=f"the baseline's {report}/drift.json is corrupt ({{error}})", expect=dict)
    return reports


def drift_config(config: ExportConfig):
    from runtime.drift.report import DriftConfig

    return DriftConfig(n=config.drift_n, severities=config.severities, sweep_n=config.sweep_n,
                       data_root=config.data_root, workers=config.workers)


def check_baseline_scenes(baseline: dict[str, dict], config: ExportConfig) -> None:
    """A baseline measured on other drift scenes cannot gate this export: say so before any work is done."""
    ours = drift_config(config).identity()
    for name, report in baseline.items():
        theirs = {k: (report.get("config") or {}).get(k) for k in ours}
        if theirs != ours:
            raise ValueError(f"the baseline's {name} was measured on other drift scenes ({theirs}) than this export's "
                             f"({ours}); use the same --drift-n, or export without --baseline and accept a new one")


def drift_reports(config: ExportConfig, budgets, pairs: dict[str, str], baseline: dict[str, dict] | None,
                  log) -> dict[str, Any]:
    from runtime.backends import load_backend
    from runtime.drift.report import drift_report

    drift_cfg = drift_config(config)
    results = {}
    for cand_name, ref_name in pairs.items():
        folder = config.out / "drift" / cand_name.replace(".", "_")  # model_fp16.onnx and .xml: two reports
        against = (baseline or {}).get(cand_name)
        with load_backend(config.out / ref_name, threads=config.threads) as ref, \
                load_backend(config.out / cand_name, **({} if cand_name.endswith(".engine") else {"threads": config.threads})) as cand:
            r = drift_report(ref, cand, folder, drift_cfg, budgets, baseline=against,
                             names={"reference": ref_name, "candidate": cand_name})
        results[cand_name] = {"reference": ref_name, "report": str(folder.relative_to(config.out)), "passed": r["passed"],
                              "violations": r["violations"], "delta": r["delta"], "candidate": r["candidate"],
                              "reference_metrics": r["reference"], "baseline": "baseline" in r,
                              "outputs": {k: v for k, v in r["outputs"].items() if k != "label_flips_per_class"}}
    return results


def summary_table(drift: dict[str, Any]) -> str:
    from dualpath.metrics import HEADLINE_KEYS

    metrics = HEADLINE_KEYS
    lines = [f"{'artifact':<24}" + "".join(f"{'d ' + m:>12}" for m in metrics) + f"{'flips':>8}{'SQNR p':>8}  status"]
    for name, r in drift.items():
        sq = r["outputs"]["sqnr_probs_db"]
        lines.append(f"{name:<24}" + "".join(f"{r['delta'][m]:>+12.4f}" for m in metrics)
                     + f"{r['outputs']['label_flip_rate']:>8.2%}{sq if sq is None else round(sq, 1):>8}  "
                     + ("ok" if r["passed"] else "PAST BUDGET"))
    return "\n".join(lines)


def run_export(config: ExportConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole export; returns the manifest (also written to out/manifest.json). Built in a staging folder inside
    config.out and published when complete; the previous export's files (and only those) are replaced."""
    from dualpath.files import folder_lock
    from export.folder import check_publishable, planned_names, previous_files, publish, staging
    from export.openvino_export import record_inference_precisions

    ensure_writable_folder(config.out)
    with folder_lock(config.out, "export"):  # one writer per export folder (a second export: exit 2)
        previous = previous_files(config.out)
        check_publishable(config.out, planned_names(config), previous)  # drift/ a file, a link elsewhere, a mount...
        baseline = read_baseline(config.baseline) if config.baseline else None
        if baseline:
            check_baseline_scenes(baseline, config)
        model, ckpt = load_checked_checkpoint(config.checkpoint)
        check_seeds(ckpt, config)
        with staging(config.out) as stage:
            staged_log = lambda line: log(line.replace(str(stage), str(config.out)))  # noqa: E731
            manifest = build_all(dataclasses.replace(config, out=stage), model, ckpt, baseline, staged_log)
            record_inference_precisions(stage, manifest)  # the OpenVINO IRs' (FP16: f32 on CPUs), in their recipes
            publish(stage, config.out, previous, manifest)
        log(f"manifest: {config.out / 'manifest.json'}")
        return manifest


def build_all(config: ExportConfig, model, ckpt: dict, baseline: dict | None, log) -> dict[str, Any]:
    from export.folder import MANIFEST_FORMAT
    from runtime.drift.budgets import DEFAULT_BUDGETS

    sha = file_sha256(config.checkpoint)
    budgets = config.budgets or dict(DEFAULT_BUDGETS)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": {"path": str(config.checkpoint), "sha256": sha, "epoch": ckpt.get("epoch"),
                       "model_config": ckpt.get("model_config")},
        "versions": library_versions(),
        "onnx": export_fp32_onnx(model, ckpt, sha, config, log),
        "parity": check_parity(model, config, log),
        "recipes": {},
    }
    planned = config.artifacts
    if FP32_XML in planned:
        openvino_fp32(config, log)
    if config.int8:
        batches, manifest["calibration"] = calibration_batches(config)
        manifest["recipes"] = quantize_qdq(config, batches, [], log)
        from_qdq = qdq_source_for_openvino(config)
        if INT8_XML in planned and not from_qdq:
            manifest["recipes"][INT8_XML] = openvino_int8(config, batches, [], log)
        with QatSource(config, model, ckpt, log, variants=qdq_variants(config), images=parity_images(16),
                       build_openvino=functools.partial(openvino_int8, config)) as qat_source:
            use = qat_source if config.qat != "never" and (config.accuracy_control or config.qat == "always") else None
            if config.qat == "always":
                rebuild_all(qat_source, config, batches, manifest["recipes"], log)
            if config.accuracy_control:
                manifest["accuracy_control"] = accuracy_control(config, batches, budgets, log, use)
                apply_control(manifest["recipes"], manifest["accuracy_control"], qat_source)
            if qat_source.info is not None:
                manifest["qat"] = qat_source.record()
        if INT8_XML in planned and from_qdq:  # after accuracy control and QAT: the QDQ model as shipped
            manifest["recipes"][INT8_XML] = openvino_from_qdq(config, from_qdq, manifest["recipes"], log)
        refresh_recipes(config.out, manifest["recipes"])
        try:
            int8_checks.check_rules(config.out, manifest["recipes"])
        except int8_checks.RulesBroken as e:
            raise ExportFailed(str(e)) from None
    if FP16_ONNX in planned:
        manifest["recipes"][FP16_ONNX] = fp16_onnx(config, log)
    if FP16_XML in planned:
        manifest["recipes"][FP16_XML] = openvino_fp16(config, log)
    if any(a.format == "tensorrt" for a in planned.values()):
        manifest["tensorrt"] = tensorrt_step(config, log)
        engines = manifest["tensorrt"]["engines"]
        manifest["recipes"] |= {e: {"format": "TensorRT engine", **info} for e, info in engines.items()}
    pairs = drift_pairs(config)
    if pairs:
        manifest["budgets"] = {m: b.to_dict() for m, b in budgets.items()}
        manifest["drift"] = drift_reports(config, budgets, pairs, baseline, log)
        if config.int8:
            int8_checks.fp16_simulation(config, drift_config(config), budgets, manifest["drift"], log)
            int8_checks.layer_reports(config, manifest["drift"], batches, qdq_variants(config))
        log(summary_table(manifest["drift"]))
    if config.benchmark:
        from export.benchmark import run_benchmark

        manifest["benchmark"] = run_benchmark(config.out, manifest, threads=config.bench_threads,
                                              iters=config.bench_iters, rounds=config.bench_rounds, log=log)
    return manifest
