"""benchmarks/throughput.py (issue 21): our backends beside benchmark_app on the same files in one run, with the
runtime's end-to-end figure. benchmark_app's report is parsed from its own lines; the script runs on the shared tiny
export with a fake benchmark_app (a script printing those lines and recording how it was called), and one slow test
runs the real one for a second where the openvino wheel installed it."""
from __future__ import annotations

import importlib
import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

# The end of a real benchmark_app report (openvino 2026.4, -hint throughput -infer_precision bf16).
REPORT = """[Step 8/11] Querying optimal runtime parameters
[ INFO ] Model:
[ INFO ]   OPTIMAL_NUMBER_OF_INFER_REQUESTS: 2
[ INFO ]   INFERENCE_PRECISION_HINT: <Type: 'bfloat16'>
[ INFO ]   PERFORMANCE_HINT: THROUGHPUT
[Step 10/11] Measuring performance (Start inference asynchronously, 2 inference requests, limits: 1000 ms duration)
[ INFO ] First inference took 3.10 ms
[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            1516 iterations
[ INFO ] Duration:         1001.27 ms
[ INFO ] Latency:
[ INFO ]    Median:        1.24 ms
[ INFO ]    Average:       1.31 ms
[ INFO ]    Min:           0.98 ms
[ INFO ]    Max:           5.01 ms
[ INFO ] Throughput:   1514.08 FPS
"""

FAKE = """#!{python}
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
hint, precision = args[args.index("-hint") + 1], args[args.index("-infer_precision") + 1]
kind = {{"f32": "float32", "bf16": "bfloat16"}}[precision]
sync = "synchronously" if hint == "latency" else "asynchronously, 2 inference requests,"
print(f"[ INFO ]   INFERENCE_PRECISION_HINT: <Type: '{{kind}}'>")
print(f"[Step 10/11] Measuring performance (Start inference {{sync}} limits: 1000 ms duration)")
print("[ INFO ] Count:            500 iterations")
print("[ INFO ]    Median:        2.00 ms")
print("[ INFO ] Throughput:   1000.00 FPS")
"""


def _module():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    return importlib.import_module("benchmarks.throughput")


def test_benchmark_app_report_is_parsed_from_its_lines():
    bench = _module()
    assert bench.parse_benchmark_app(REPORT) == {"median_ms": 1.24, "average_ms": 1.31, "fps": 1514.08, "count": 1516,
                                                 "requests": 2, "compute": "bf16"}
    under_a_ms = bench.parse_benchmark_app(REPORT.replace("1.24 ms", "674.98 us").replace("1.31 ms", "748.49 us"))
    assert under_a_ms["median_ms"] == pytest.approx(0.67498) and under_a_ms["average_ms"] == pytest.approx(0.74849)
    with pytest.raises(ValueError, match="no Median latency / Throughput line: RuntimeError: cannot read"):
        bench.parse_benchmark_app("[ ERROR ] something\nRuntimeError: cannot read model.xml\n")
    cmd = bench.peer_command("benchmark_app", Path("m.xml"), "latency", 0.2, "f32", 64, 1, Path("/tmp"))
    assert cmd[:9] == ["benchmark_app", "-m", "m.xml", "-d", "CPU", "-hint", "latency", "-t", "1"]
    assert cmd[cmd.index("-shape") + 1] == "[1,3,64,64]" and cmd[cmd.index("-infer_precision") + 1] == "f32"
    assert "-nthreads" not in cmd and "-load_config" in cmd  # benchmark_app refuses -nthreads beside a hint


def test_rows_take_the_median_of_rounds_and_the_ratios():
    bench = _module()
    cell = {"ours": [{"fps": 900.0, "compute": "bf16", "requests": 4}, {"fps": 1100.0, "compute": "bf16", "requests": 4},
                     {"error": "boom"}],
            "peer": [{"fps": 1000.0, "median_ms": 1.0, "compute": "bf16", "requests": 2}],
            "runtime": [{"fps": 800.0}, {"fps": 1000.0}]}
    row = bench.summarize("model_bf16.xml", "throughput", cell)
    assert (row["ours"], row["peer"], row["runtime"]) == (1000.0, 1000.0, 900.0)
    assert row["ours_spread"] == [900.0, 1100.0] and row["ours_error"] == "boom"
    assert row["ratio_ours_peer"] == 1.0 and row["ratio_runtime_peer_fps"] == 0.9
    assert (row["compute"], row["peer_compute"], row["requests"], row["peer_requests"]) == ("bf16", "bf16", 4, 2)
    lat = bench.summarize("model_fp32.onnx", "latency", {"ours": [{"p50_ms": 2.0, "fps": 500.0}], "peer": [], "runtime": []})
    assert lat["ours"] == 2.0 and lat["peer"] is None and lat["ratio_ours_peer"] is None
    text = bench.table([row, lat], "test machine", ["a note"])
    assert "model_bf16.xml" in text and "1.00" in text and text.endswith("a note")


def test_the_script_times_ours_the_peer_and_the_runtime_on_the_same_files(exported, tmp_path, capsys):
    bench = _module()
    config, _, _ = exported
    calls = tmp_path / "calls.jsonl"
    fake = tmp_path / "benchmark_app"
    fake.write_text(FAKE.format(python=sys.executable, log=str(calls)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "throughput.json"
    assert bench.main(["--export", str(config.out), "--seconds", "0.3", "--threads", "1", "--runtime-frames", "30",
                       "--artifacts", "model_fp32.xml,model_bf16.xml,model_fp32.onnx", "--benchmark-app", str(fake),
                       "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    rows = {(r["artifact"], r["mode"]): r for r in result["rows"]}
    assert set(rows) == {(n, m) for n in ("model_fp32.xml", "model_bf16.xml", "model_fp32.onnx")
                         for m in ("latency", "throughput")}
    for (name, mode), r in rows.items():
        assert r["ours"] > 0 and r["runtime"] > 0, r  # the runtime ran end to end on the generated clip
        if name.endswith(".xml"):  # the peer's figures, as the fake printed them
            assert r["peer"] == (2.0 if mode == "latency" else 1000.0) and r["ratio_ours_peer"] == r["ours"] / r["peer"]
            assert r["peer_compute"] == r["compute"]  # benchmark_app was asked for what ours computed in
        else:
            assert r["peer"] is None  # benchmark_app is OpenVINO's: no peer for ONNX Runtime
    assert rows[("model_fp32.xml", "latency")]["compute"] == "f32"  # the FP32 IR in f32, the bf16 IR as recorded
    assert rows[("model_bf16.xml", "latency")]["compute"] in ("bf16", "f32")
    argv = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len(argv) == 4 and {a[a.index("-m") + 1] for a in argv} == {
        str(config.out / "model_fp32.xml"), str(config.out / "model_bf16.xml")}
    assert all(a[a.index("-infer_precision") + 1] in ("f32", "bf16") and "-load_config" in a for a in argv)
    assert result["machine"]["isa"] and result["machine"]["cpu"] in printed and "ours/peer" in printed


def test_bad_input_is_exit_2(exported, tmp_path, capsys):
    bench = _module()
    config, _, _ = exported
    assert bench.main(["--export", str(tmp_path)]) == 2
    assert bench.main(["--export", str(config.out), "--artifacts", "model_nope.xml"]) == 2
    assert bench.main(["--export", str(config.out), "--benchmark-app", str(tmp_path / "none")]) == 2
    assert "comes with the openvino wheel" in capsys.readouterr().err


@pytest.mark.slow
def test_the_real_benchmark_app_for_a_second(exported, tmp_path):
    bench = _module()
    app = bench.find_benchmark_app(None)
    if app is None:
        pytest.skip("no benchmark_app (pip install openvino installs it)")
    config, _, _ = exported
    out = tmp_path / "t.json"
    assert bench.main(["--export", str(config.out), "--seconds", "1", "--runtime-frames", "0", "--threads", "1",
                       "--artifacts", "model_int8.xml", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert all(r["peer"] > 0 and r["peer_compute"] == r["compute"] and "peer_error" not in r for r in rows), rows
    assert shutil.which(app) or Path(app).is_file()
