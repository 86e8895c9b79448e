"""Issue 21: the bf16 OpenVINO IR (--bf16: the FP32 IR, its metadata asking CPUs for bf16 compute) with its drift report
against the FP32 IR run in f32, and the benchmark table naming, for the CPU it ran on, the fastest artifact within its
drift budget per mode (export.benchmark.fastest_within_budget): on fabricated rows, then on the shared tiny export."""
from __future__ import annotations

import json

import pytest

from export.benchmark import fastest_line, fastest_within_budget, markdown

MACHINE = {"cpu": "Test CPU", "isa": "avx2 avx512_bf16", "cores": 2, "system": "Linux", "threads": 2, "rounds": 1}


def _row(name, p50, ips, drift=None, compute=None, precision="fp32", **extra):
    return {"artifact": name, "precision": precision, "bytes": 1, "p50_ms": p50, "batch32_images_per_s": ips,
            "compute": compute, "drift": drift, **extra}


def _drift(passed=True, computed_in=None, reference="model_fp32.xml"):
    return {"reference": reference, "passed": passed, "accuracy": 0.0, "macro_map": 0.0, "ssim": 0.0,
            "computed_in": computed_in}


def test_fastest_per_mode_among_artifacts_within_budget():
    rows = [_row("model_fp32.onnx", 1.5, 900), _row("model_fp32.xml", 1.8, 1000, compute="f32"),
            _row("model_bf16.xml", 1.1, 1800, _drift(computed_in="bf16"), "bf16", "bf16"),
            _row("model_int8.xml", 1.3, 2000, _drift(computed_in="bf16"), "bf16", "int8"),
            _row("model_int8_u8.onnx", 0.5, 5000, _drift(passed=False, reference="model_fp32.onnx"), precision="int8")]
    f = fastest_within_budget(rows, MACHINE)
    assert f["latency"]["artifact"] == "model_bf16.xml" and f["latency"]["p50_ms"] == 1.1  # the u8 is faster: past budget
    assert f["throughput"]["artifact"] == "model_int8.xml" and f["throughput"]["batch32_images_per_s"] == 2000
    assert f["cpu_flags"] == "avx2 avx512_bf16" and f["cpu"] == "Test CPU"
    assert f["not_counted"] == {"model_int8_u8.onnx": "past its drift budget vs model_fp32.onnx"}
    assert f["counted"] == ["model_fp32.onnx", "model_fp32.xml", "model_bf16.xml", "model_int8.xml"]
    line = fastest_line(f)
    assert "latency (batch-1 p50) `model_bf16.xml` (bf16, bf16 compute), 1.10 ms" in line
    assert "throughput (batch 32) `model_int8.xml` (int8, bf16 compute), 2000 img/s" in line
    assert "`model_int8_u8.onnx` (past" in line
    assert "avx2 avx512_bf16" in line


def test_fp32_always_counts_and_unmeasured_or_mismatched_drift_does_not():
    rows = [_row("model_fp32.xml", 2.0, 1000, compute="f32"),
            # drift measured where the CPU computed f32 (no native bf16), timed where it computes bf16: says nothing
            _row("model_bf16.xml", 1.0, 3000, _drift(computed_in="f32"), "bf16", "bf16"),
            _row("model_fp16.xml", 0.9, 3000, None, "f32", "fp16"),  # no drift report: not counted
            _row("model_int8.xml", 0.8, 4000, _drift(), precision="int8", skipped="openvino not installed")]
    f = fastest_within_budget(rows, MACHINE)
    assert f["latency"]["artifact"] == f["throughput"]["artifact"] == "model_fp32.xml"
    assert set(f["not_counted"]) == {"model_bf16.xml", "model_fp16.xml", "model_int8.xml"}
    assert "measured computing in f32, here it computes in bf16" in f["not_counted"]["model_bf16.xml"]
    assert fastest_within_budget([], MACHINE)["latency"] is None
    assert "none timed within budget" in fastest_line(fastest_within_budget([], MACHINE))


def test_the_markdown_table_ends_with_the_fastest_line():
    rows = [_row("model_fp32.xml", 2.0, 1000, compute="f32", p95_ms=2.1, p99_ms=2.2)]
    result = {"machine": MACHINE, "rows": rows, "batch": 32, "fastest_within_budget": fastest_within_budget(rows, MACHINE)}
    assert markdown(result).strip().splitlines()[-1].startswith("**Fastest within its drift budget on this CPU**")


def test_the_bf16_ir_is_the_fp32_ir_asking_cpus_for_bf16(exported):
    import openvino as ov

    from export.openvino_export import cpu_has_native_bf16, recorded_inference_precision
    from runtime.backends import load_backend

    config, manifest, logs = exported
    out = config.out
    assert (out / "model_bf16.xml").is_file() and (out / "model_bf16.bin").is_file()
    assert (out / "model_bf16.bin").read_bytes() == (out / "model_fp32.bin").read_bytes()  # same FP32 weights
    assert recorded_inference_precision(out / "model_bf16.xml") == {"CPU": "bf16"}
    ops = lambda p: sorted(o.get_type_name() for o in ov.Core().read_model(str(p)).get_ops())  # noqa: E731
    assert ops(out / "model_bf16.xml") == ops(out / "model_fp32.xml")
    recipe = manifest["recipes"]["model_bf16.xml"]
    assert recipe["inference_precision"] == {"CPU": "bf16"} and recipe["source"] == "model_fp32.xml"
    native = cpu_has_native_bf16()
    assert recipe["cpu_native_bf16"] == native and recipe["computed_in_here"] == ("bf16" if native else "f32")
    with load_backend(out / "model_bf16.xml", threads=1) as be:  # precision auto honours the metadata
        assert be.inference_precision == recipe["computed_in_here"]
    drift = manifest["drift"]["model_bf16.xml"]
    assert drift["reference"] == "model_fp32.xml" and drift["report"] == "drift/model_bf16_xml"
    report = json.loads((out / "drift/model_bf16_xml/drift.json").read_text())
    assert report["runtimes"]["reference"]["inference_precision"] == "f32"  # the reference in f32
    assert report["runtimes"]["candidate"]["inference_precision"] == recipe["computed_in_here"]
    assert any("OpenVINO bf16:" in line for line in logs)


def test_the_exports_table_names_the_fastest_within_budget(exported):
    config, manifest, _ = exported
    result = json.loads((config.out / "benchmark.json").read_text())
    rows = {r["artifact"]: r for r in result["rows"]}
    assert rows["model_bf16.xml"]["precision"] == "bf16"
    assert rows["model_bf16.xml"]["compute"] == manifest["recipes"]["model_bf16.xml"]["computed_in_here"]
    fastest = result["fastest_within_budget"]
    assert fastest == fastest_within_budget(result["rows"], result["machine"])  # what the pure function says
    within = {n for n, r in rows.items() if r["drift"] is None or r["drift"]["passed"]}
    for mode, key, pick in (("latency", "p50_ms", min), ("throughput", "batch32_images_per_s", max)):
        best = pick((r for n, r in rows.items() if n in fastest["counted"]), key=lambda r: r[key])
        assert fastest[mode]["artifact"] == best["artifact"] and best["artifact"] in within
    assert fastest["cpu_flags"] == result["machine"]["isa"]
    assert manifest["benchmark"]["fastest_within_budget"] == {
        "latency": fastest["latency"]["artifact"], "throughput": fastest["throughput"]["artifact"],
        "cpu_flags": result["machine"]["isa"]}
    assert "**Fastest within its drift budget on this CPU**" in (config.out / "benchmark.md").read_text()


@pytest.mark.slow
def test_the_benchmark_command_records_its_summary_in_the_manifest(exported, tmp_path):
    import shutil

    from export.benchmark import main as bench_main

    config, _, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(config.out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["benchmark"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert bench_main(["--export", str(copy), "--threads", "1", "--iters", "10", "--rounds", "1"]) == 0
    summary = json.loads((copy / "manifest.json").read_text())["benchmark"]
    assert set(summary["fastest_within_budget"]) == {"latency", "throughput", "cpu_flags"}


def test_fastest_prints_the_named_artifacts_path_or_says_what_to_do(exported, tmp_path, capsys):
    """`python -m export.benchmark --fastest MODE` (what make demo runs the runtime on): the manifest's pick as a path;
    an export never benchmarked is exit 2, one line."""
    from export.benchmark import main as bench_main

    config, manifest, _ = exported
    for mode in ("latency", "throughput"):
        assert bench_main(["--export", str(config.out), "--fastest", mode]) == 0
        assert capsys.readouterr().out.strip() == str(config.out / manifest["benchmark"]["fastest_within_budget"][mode])
    (tmp_path / "manifest.json").write_text(json.dumps({"files": {}}))
    assert bench_main(["--export", str(tmp_path), "--fastest", "latency"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "python -m export.benchmark" in err and len(err.strip().splitlines()) == 1
