"""INT8 recipes side by side on one checkpoint: post-training quantization against quantization-aware fine-tuning
(export.qat), each row a real `python -m export` run on the same calibration and drift scenes. One table, one JSON.

    python -m benchmarks.int8_recipes --checkpoint runs/demo/best.pt --work runs/int8-recipes \
        --rows ptq,qat-train,qat-distill --out benchmarks/results/int8_recipes.json

Earlier recipes' rows (every tensor quantized, shared concat ranges; float decoder blocks) are kept in
benchmarks/results/int8_recipes_history_*.json, measured with the code of their commits (docs/measurements.md).

Each row exports the s8 (TensorRT's source) and u8 QDQ models and the OpenVINO INT8 IR and gates each against its
FP32 model on the 1000 drift scenes (the sweep left out), as the export does: drift of label-wise accuracy, macro mAP
and SSIM, the share of scenes whose top-T labels change, the share of conv/gemm layers in INT8, the s8 model again
with its float layers on fp16 numbers (TensorRT --fp16), and the row's wall time. Rows (ROWS below) differ in the
export flags and, for the float-layer study, in the recipe's float decoder blocks (export.quantize_onnx).
Exit codes: 0 the table was made (whatever it says), 2 bad input.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from dualpath import exitcodes
from dualpath.machine import describe, headline

# row -> (ExportConfig overrides, recipe overrides: export.quantize_onnx module constants). Every row names its
# calibration and u8 weights: most rows were measured with min-max and 7-bit u8 weights, the export's defaults until
# percentile and 8-bit weights took their place (2026-12-07).
MINMAX = {"qat": "never", "calib_method": "minmax", "u8_weights": 7}
PERCENTILE = {"qat": "never", "calib_method": "percentile", "u8_weights": 7}
ROWS: dict[str, tuple[dict, dict]] = {
    "ptq": (MINMAX, {}),
    "qat-train": ({**MINMAX, "qat": "always", "qat_objective": "train"}, {}),
    "qat-distill": ({**MINMAX, "qat": "always", "qat_objective": "distill"}, {}),
    "qat-distill-lr5": ({**MINMAX, "qat": "always", "qat_objective": "distill", "qat_options": {"lr_fraction": 0.05}},
                        {}),
    "ptq-percentile": (PERCENTILE, {}),
    "ptq-entropy": ({**MINMAX, "calib_method": "entropy"}, {}),
    # where the drift comes from: one part of the model kept in float (on top of each artifact's own float recipe)
    "ptq-float-encoder": (MINMAX, {"FLOAT_SCOPES": ("/model/head/", "/model/reconstruction/", "/model/encoder/")}),
    "ptq-float-decoder": (MINMAX, {"FLOAT_SCOPES": ("/model/head/", "/model/reconstruction/", "/model/decoder/")}),
    "ptq-float-classifier": (MINMAX, {"FLOAT_SCOPES": ("/model/head/", "/model/reconstruction/", "/model/features/")}),
    "ptq-u8-8bit-weights": ({**MINMAX, "u8_weights": 8}, {}),
    "ptq-percentile-u8-8bit-weights": ({**PERCENTILE, "u8_weights": 8}, {}),  # the export's defaults since 2026-12-07
    # the s8 model's float parts: as OpenVINO's (head INT8, the last two decoder blocks float; the default since
    # 2026-12-07) and as before (head float, one block); 96/106 conv/gemm INT8 both
    "ptq-s8-two-float-blocks": ({**PERCENTILE, "u8_weights": 8}, {"s8_floats": {"head": False, "decoder_blocks": 2}}),
    "ptq-s8-float-head-one-block": ({**PERCENTILE, "u8_weights": 8},
                                    {"s8_floats": {"head": True, "decoder_blocks": 1}}),
}
ARTIFACTS = ("model_int8_s8.onnx", "model_int8_u8.onnx", "model_int8.xml")


@contextlib.contextmanager
def recipe(overrides: dict):
    import dataclasses

    from export import quantize_onnx

    overrides = dict(overrides)
    if "s8_floats" in overrides:  # the s8 variant's FloatRecipe fields: a VARIANTS with that s8
        s8 = quantize_onnx.VARIANTS["s8"]
        floats = quantize_onnx.FloatRecipe(**overrides.pop("s8_floats"))
        overrides["VARIANTS"] = {**quantize_onnx.VARIANTS, "s8": dataclasses.replace(s8, floats=floats)}
    saved = {k: getattr(quantize_onnx, k) for k in overrides}
    for k, v in overrides.items():
        setattr(quantize_onnx, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(quantize_onnx, k, v)


def run_row(name: str, checkpoint: Path, work: Path, data_root: Path, minutes: float, threads: int, workers: int) -> dict:
    from export.config import export_config
    from export.context import ExportFailed
    from export.pipeline import run_export

    flags, overrides = ROWS[name]
    config = export_config(checkpoint=checkpoint, out=work / name, int8=True, backends=("onnx", "openvino"),
                          severities=(), data_root=data_root, threads=threads, workers=workers, qat_minutes=minutes,
                          **flags)
    lines: list[str] = []
    t0 = time.perf_counter()
    with recipe(overrides):
        try:
            manifest = run_export(config, log=lambda line: (lines.append(line), print(f"  [{name}] {line}", flush=True)))
        except ExportFailed as e:
            return {"row": name, "error": str(e), "seconds": round(time.perf_counter() - t0, 1)}
    seconds = time.perf_counter() - t0
    row = {"row": name, "flags": flags, "recipe": overrides, "seconds": round(seconds, 1), "artifacts": {}}
    if "qat" in manifest:
        q = manifest["qat"]
        row["qat"] = {k: q[k] for k in ("steps", "seconds", "scenes_seen", "objective", "peak_lr", "loss_first",
                                       "loss_last", "mirror_parity_before", "mirror_parity_after") if k in q}
    for artifact in (a for a in ARTIFACTS if a in manifest["drift"]):
        d, recipe_ = manifest["drift"][artifact], manifest["recipes"][artifact]
        graph = recipe_["graph"]
        entry = {"delta": {m: d["delta"][m] for m in ("accuracy", "macro_map", "ssim")},
                 "label_flip_rate": d["outputs"]["label_flip_rate"], "passed": d["passed"],
                 "violations": d["violations"], "int8_layers": [graph["conv_gemm_int8"], graph["conv_gemm_total"]]}
        if "tensorrt_fp16" in d:
            f = d["tensorrt_fp16"]
            entry["tensorrt_fp16"] = {"delta": {m: f["delta"][m] for m in ("accuracy", "macro_map", "ssim")},
                                      "label_flip_rate": f["label_flip_rate"], "passed": f["passed"]}
        row["artifacts"][artifact] = entry
    first = next(iter(row["artifacts"]))
    row["reference"] = {m: manifest["drift"][first]["reference_metrics"][m] for m in ("accuracy", "macro_map", "ssim")}
    return row


def table(rows: list[dict]) -> str:
    out = [f"{'row':<28}{'artifact':<20}{'d acc':>8}{'d mAP':>8}{'d SSIM':>8}{'flips':>7}{'INT8':>9}  verdict"
           f"   (s8 as TensorRT --fp16: d mAP / d SSIM / flips)", "-" * 120]
    for r in rows:
        if "error" in r:
            out.append(f"{r['row']:<28}ERROR {r['error'][:80]}")
            continue
        for artifact, a in r["artifacts"].items():
            d = a["delta"]
            i8, total = a["int8_layers"]
            extra = ""
            if "tensorrt_fp16" in a:
                f = a["tensorrt_fp16"]
                extra = f"   {f['delta']['macro_map']:+.4f} / {f['delta']['ssim']:+.4f} / {f['label_flip_rate']:.1%}"
            out.append(f"{r['row']:<28}{artifact:<20}{d['accuracy']:>+8.4f}{d['macro_map']:>+8.4f}{d['ssim']:>+8.4f}"
                       f"{a['label_flip_rate']:>7.1%}{i8:>5}/{total:<3}  {'ok' if a['passed'] else 'PAST'}{extra}")
        qat = r.get("qat")
        out.append(f"{'':<28}row time {r['seconds'] / 60:.1f} min" + (
            f", QAT {qat['steps']} steps / {qat['seconds'] / 60:.1f} min ({qat['objective']})" if qat else ""))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("runs/int8-recipes"), help="one export folder per row")
    p.add_argument("--rows", default="ptq,qat-train,qat-distill", help=f"comma list of {', '.join(ROWS)}")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/int8_recipes.json"))
    p.add_argument("--data-root", type=Path, default=Path("data"))
    p.add_argument("--qat-minutes", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not args.checkpoint.is_file():
        print(f"error: {'unknown rows ' + ', '.join(unknown) + '; choose from ' + ', '.join(ROWS) if unknown else 'no checkpoint at ' + str(args.checkpoint)}",
              file=sys.stderr)
        return exitcodes.BAD_INPUT
    machine = describe()
    print(f"INT8 recipes on {args.checkpoint} ({headline(machine)})", flush=True)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    done = {r["row"]: r for r in previous.get("rows", []) if previous.get("checkpoint") == str(args.checkpoint)}
    results = []
    for name in rows:
        results.append(run_row(name, args.checkpoint, args.work, args.data_root, args.qat_minutes, args.threads,
                               args.workers))
        done[name] = results[-1]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(args.checkpoint), "machine": machine,
                                        "rows": list(done.values())}, indent=1))
        print(table([results[-1]]), flush=True)
    print(f"\n{headline(machine)}\n" + table(results))
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
