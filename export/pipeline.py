"""The export run: checkpoint -> FP32 ONNX (+ parity) -> QDQ INT8 ONNX -> OpenVINO FP32/INT8 -> TensorRT engine
(or its build script) -> drift reports -> manifest.json. Each step writes its files atomically."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from export.atomic import atomic_path, ensure_writable_folder, file_sha256, write_json, write_text
from export.config import ExportConfig
from export.metadata import check_checkpoint_contract, library_versions, model_metadata

FP32_ONNX = "model_fp32.onnx"
FP32_XML = "model_fp32.xml"
INT8_XML = "model_int8.xml"
RANGES = "calibration_ranges.json"
SHARED_RANGES = "calibration_ranges_shared_concat.json"


def ranges_for(variant) -> str:
    return SHARED_RANGES if variant.share_concat else RANGES


def int8_onnx_name(variant: str) -> str:
    return f"model_int8_{variant}.onnx"


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
    from runtime.drift.sets import DRIFT_SEED

    data_seed = (ckpt.get("train_config") or {}).get("data_seed")
    if data_seed in (config.calib_seed, DRIFT_SEED):
        raise ValueError(f"the checkpoint was trained on scenes of seed {data_seed}, which calibration / drift sets "
                         "use; choose another --calib-seed (drift sets use runtime.drift.DRIFT_SEED)")


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

    fp32 = config.out / FP32_ONNX
    proto = onnx.load(str(fp32))
    floats = q.float_nodes(proto)
    with atomic_path(config.out / RANGES) as raw, atomic_path(config.out / SHARED_RANGES) as shared:
        q.calibrate(fp32, batches, config.calib_method, raw, shared)
    recipes = {}
    for name in config.qdq_variants:
        variant = q.VARIANTS[name]
        path = config.out / int8_onnx_name(name)
        q.quantize(fp32, path, config.out / ranges_for(variant), variant, config.calib_method, floats + float_extra)
        q.copy_metadata(proto, path, precision=json.dumps(f"int8-qdq-{name}"))
        summary = q.qdq_summary(onnx.load(str(path)))
        recipes[path.name] = {
            "format": "QDQ", "activations": variant.activation, "symmetric_activations": variant.symmetric,
            "weights": "int8 per-channel symmetric", "calibration": config.calib_method, "target": variant.target,
            "shared_concat_ranges": variant.share_concat, "reduce_range_weights": variant.reduce_range, "kept_in_float": sorted(set(floats + float_extra)), "graph": summary,
        }
        log(f"QDQ INT8 ({name}, {variant.target}): {path.name}, {summary['conv_gemm_int8']}/"
            f"{summary['conv_gemm_total']} conv/gemm in INT8")
    return recipes


def openvino_fp32(config: ExportConfig, log) -> None:
    from export import openvino_export as ovx
    from runtime.backends.metadata import ModelMetadata
    from runtime.backends.ov import onnx_props

    props = onnx_props(config.out / FP32_ONNX)
    ModelMetadata.from_props(props)
    ovx.save_ir(ovx.convert(config.out / FP32_ONNX), config.out / FP32_XML, props)
    log(f"OpenVINO FP32: {config.out / FP32_XML}")


def openvino_int8(config: ExportConfig, batches, float_extra: list[str], log) -> dict[str, Any]:
    import onnx

    from export import openvino_export as ovx
    from export.quantize_onnx import float_nodes
    from runtime.backends.ov import onnx_props

    floats = float_nodes(onnx.load(str(config.out / FP32_ONNX))) + float_extra
    props = onnx_props(config.out / FP32_ONNX) | {"precision": json.dumps("int8-nncf")}
    model = ovx.quantize_int8(ovx.convert(config.out / FP32_ONNX), batches, floats, subset_size=config.calib_n,
                              activation_ranges=config.ov_ranges)
    ovx.save_ir(model, config.out / INT8_XML, props)
    log(f"OpenVINO INT8 (NNCF): {config.out / INT8_XML}")
    return {"format": "OpenVINO IR, NNCF post-training quantization", "preset": "mixed",
            "calibration": f"nncf {config.ov_ranges} activation ranges, min/max weights, fast bias correction",
            "activation_ranges": config.ov_ranges, "kept_in_float": sorted(set(floats))}


def tensorrt_step(config: ExportConfig, log) -> dict[str, Any]:
    """Build the engine where TensorRT and a GPU exist; otherwise leave the script and the command to run there."""
    from export import tensorrt_build

    onnx_name, engine = int8_onnx_name("s8"), "model_int8.engine"
    script = config.out / "build_tensorrt_engine.py"
    with atomic_path(script) as tmp:
        shutil.copyfile(tensorrt_build.__file__, tmp)
    cmd = tensorrt_build.command(onnx_name, engine, config.max_batch)
    trtexec = (f"trtexec --onnx={onnx_name} --saveEngine={engine} --int8 --fp16 --minShapes=image:1x3x64x64 "
               f"--optShapes=image:1x3x64x64 --maxShapes=image:{config.max_batch}x3x64x64 "
               "--timingCacheFile=tensorrt.cache   # no sidecar: prefer the script")
    write_text(config.out / "build_tensorrt_engine.sh",
               f"#!/bin/sh\n# Run on the target device (TensorRT 10.x / 11.x): the engine is tied to its GPU and version.\n"
               f"set -e\ncd \"$(dirname \"$0\")\"\n{cmd}\n# equivalent without the sidecar:\n# {trtexec}\n")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        log(f"TensorRT: not installed here; on the device run: sh {config.out / 'build_tensorrt_engine.sh'}")
        return {"built": False, "reason": "tensorrt is not importable on the export machine", "command": cmd,
                "script": script.name}
    sidecar = tensorrt_build.build(config.out / onnx_name, config.out / engine,
                                   json.loads((config.out / "metadata.json").read_text()), config.max_batch,
                                   timing_cache=config.out / "tensorrt.cache")
    log(f"TensorRT engine: {config.out / engine} ({sidecar['gpu']}, TensorRT {sidecar['tensorrt_version']})")
    return {"built": True, "engine": engine, "command": cmd, **{k: sidecar[k] for k in
            ("tensorrt_version", "gpu", "compute_capability")}}


def manifest_files(out: Path) -> dict[str, dict[str, Any]]:
    return {str(p.relative_to(out)): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "manifest.json"
            and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def _violations_fn(config: ExportConfig, reference: Path, budgets, images_labels_clean):
    """artifact -> budget violations against `reference` on the accuracy-control validation scenes."""
    from runtime.backends import load_backend
    from runtime.drift.budgets import check, scaled
    from runtime.drift.compare import head_metrics, run_backend

    budgets = scaled(budgets, config.control_margin)

    noisy, labels, clean = images_labels_clean
    with load_backend(reference, threads=config.threads) as ref:
        m_ref = head_metrics(labels, clean, run_backend(ref, noisy))

    def violations(artifact: Path) -> list[str]:
        with load_backend(artifact, threads=config.threads) as cand:
            return check(budgets, m_ref, head_metrics(labels, clean, run_backend(cand, noisy)))

    return violations


def accuracy_control(config: ExportConfig, batches, budgets, recipes: dict, log) -> dict[str, Any]:
    """Return the most sensitive layers to float for each INT8 artifact past its budget (validation scenes)."""
    import onnx

    from calibration import ACCURACY_CONTROL_SEED
    from export import accuracy_control as ac
    from export.quantize_onnx import VARIANTS, copy_metadata, float_nodes, quantize
    from runtime.drift.sets import drift_dataset

    val = drift_dataset(config.data_root, min(config.drift_n, 500), seed=ACCURACY_CONTROL_SEED, workers=config.workers)
    data = (val.noisy, val.labels, val.clean)
    fp32 = config.out / FP32_ONNX
    proto = onnx.load(str(fp32))
    floats = float_nodes(proto)
    probe = int8_onnx_name(config.qdq_variants[0])
    ranking = ac.rank_layers(fp32, config.out / probe, list(batches)[:4], set(floats))
    recon_path = [n.name for n in proto.graph.node if n.name.startswith(ac.RECON_SCOPES)]
    results = {}
    targets = {int8_onnx_name(v): (fp32, v) for v in config.qdq_variants}
    if "openvino" in config.backends:
        targets[INT8_XML] = (config.out / FP32_XML, None)
    for name, (reference, variant) in targets.items():
        violations = _violations_fn(config, reference, budgets, data)
        if not violations(config.out / name):
            results[name] = {"met": True, "kept_in_float": [], "rounds": []}
            continue

        def build(kept: list[str], name=name, variant=variant) -> Path:
            if variant is not None:
                quantize(fp32, config.out / name, config.out / ranges_for(VARIANTS[variant]), VARIANTS[variant],
                         config.calib_method, floats + kept)
                copy_metadata(proto, config.out / name, precision=json.dumps(f"int8-qdq-{variant}"))
            else:
                openvino_int8(config, batches, kept, lambda _: None)
            return config.out / name

        results[name] = ac.control(ranking, build, violations, fallback=recon_path)
        recipes.get(name, {})["kept_in_float"] = sorted(set(floats + results[name]["kept_in_float"]))
        log(f"accuracy control {name}: {len(results[name]['kept_in_float'])} layers back in float, "
            f"{config.control_margin:g} x budgets {'met' if results[name]['met'] else 'NOT met'} on {len(val)} "
            "validation scenes")
    return {"validation": {"seed": ACCURACY_CONTROL_SEED, "n": len(val)}, "budget_share": config.control_margin,
            "artifacts": results}


def drift_reports(config: ExportConfig, budgets, log) -> dict[str, Any]:
    from runtime.backends import load_backend
    from runtime.drift.report import DriftConfig, drift_report

    pairs = {int8_onnx_name(v): FP32_ONNX for v in config.qdq_variants}
    if "openvino" in config.backends:
        pairs[INT8_XML] = FP32_XML
    drift_cfg = DriftConfig(n=config.drift_n, severities=config.severities, sweep_n=config.sweep_n,
                            data_root=config.data_root, workers=config.workers)
    results = {}
    for cand_name, ref_name in pairs.items():
        folder = config.out / "drift" / Path(cand_name).stem
        with load_backend(config.out / ref_name, threads=config.threads) as ref, \
                load_backend(config.out / cand_name, threads=config.threads) as cand:
            r = drift_report(ref, cand, folder, drift_cfg, budgets, names={"reference": ref_name, "candidate": cand_name})
        results[cand_name] = {"reference": ref_name, "report": str(folder.relative_to(config.out)), "passed": r["passed"],
                              "violations": r["violations"], "delta": r["delta"], "candidate": r["candidate"],
                              "reference_metrics": r["reference"], "outputs": {k: v for k, v in r["outputs"].items()
                                                                              if k != "label_flips_per_class"}}
    return results


def summary_table(drift: dict[str, Any]) -> str:
    metrics = ("accuracy", "macro_map", "ssim", "psnr")
    lines = [f"{'artifact':<24}" + "".join(f"{'d ' + m:>12}" for m in metrics) + f"{'flips':>8}{'SQNR p':>8}  status"]
    for name, r in drift.items():
        sq = r["outputs"]["sqnr_probs_db"]
        lines.append(f"{name:<24}" + "".join(f"{r['delta'][m]:>+12.4f}" for m in metrics)
                     + f"{r['outputs']['label_flip_rate']:>8.2%}{sq if sq is None else round(sq, 1):>8}  "
                     + ("ok" if r["passed"] else "PAST BUDGET"))
    return "\n".join(lines)


def run_export(config: ExportConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The whole export; returns the manifest (also written to out/manifest.json)."""
    from runtime.drift.budgets import DEFAULT_BUDGETS

    ensure_writable_folder(config.out)
    model, ckpt = load_checked_checkpoint(config.checkpoint)
    check_seeds(ckpt, config)
    sha = file_sha256(config.checkpoint)
    budgets = config.budgets or dict(DEFAULT_BUDGETS)
    manifest: dict[str, Any] = {
        "format": "dualpath-export/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": {"path": str(config.checkpoint), "sha256": sha, "epoch": ckpt.get("epoch"),
                       "model_config": ckpt.get("model_config")},
        "versions": library_versions(),
        "onnx": export_fp32_onnx(model, ckpt, sha, config, log),
        "parity": check_parity(model, config, log),
        "recipes": {},
    }
    if "openvino" in config.backends:
        openvino_fp32(config, log)
    if config.int8:
        batches, manifest["calibration"] = calibration_batches(config)
        manifest["recipes"] = quantize_qdq(config, batches, [], log)
        if "openvino" in config.backends:
            manifest["recipes"][INT8_XML] = openvino_int8(config, batches, [], log)
        if config.accuracy_control:
            manifest["accuracy_control"] = accuracy_control(config, batches, budgets, manifest["recipes"], log)
        if "tensorrt" in config.backends:
            manifest["tensorrt"] = tensorrt_step(config, log)
        manifest["budgets"] = {m: b.to_dict() for m, b in budgets.items()}
        manifest["drift"] = drift_reports(config, budgets, log)
        log(summary_table(manifest["drift"]))
    manifest["files"] = manifest_files(config.out)
    write_json(config.out / "manifest.json", manifest)
    log(f"manifest: {config.out / 'manifest.json'}")
    return manifest
