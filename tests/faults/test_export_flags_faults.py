"""python -m export (and runtime.drift) refuse what they could only find late before any work (issue 19, item 16),
checkpoints whose fields have the wrong type with one line naming the file and the field (item 15), and Ctrl-C in
export and calibration is one line, exit 130, nothing half-written (item 14)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from dualpath.exitcodes import BAD_INPUT, INTERRUPTED  # noqa: E402
from export.__main__ import main  # noqa: E402
from fault_checks import ROOT, default_sigint, error_line, temporaries  # noqa: E402


def _argv(ckpt, out, data, *extra):
    return ["--checkpoint", str(ckpt), "--out", str(out), "--threads", "1", "--data-root", str(data), *map(str, extra)]


# ------------------------------------------------------------------------------------------------ item 16: late flags


@pytest.mark.parametrize("flags, named", [
    (("--int8", "--sweep-n", "0"), "sweep_n"),
    (("--int8", "--drift-n", "16"), "n and sweep_n"),
    (("--fp16", "--drift-n", "-5"), "n and sweep_n"),
    (("--int8", "--severities", "9"), "severity"),
    (("--int8", "--severities", "1,nan"), "severity"),
    (("--int8", "--workers", "0"), "workers"),
    (("--int8", "--threads", "0"), "threads"),
    (("--int8", "--calib-n", "0"), "calib_n"),
    (("--int8", "--calib-seed", "2000003"), "drift"),
    (("--int8", "--calib-seed", "1000004"), "accuracy-control"),
    (("--int8", "--calib-seed", "5"), "calib_seed"),
    (("--max-batch", "0"), "max_batch"),
    (("--benchmark", "--bench-iters", "5"), "bench_iters"),
    (("--benchmark", "--bench-threads", "0"), "bench_threads"),
    (("--int8", "--accuracy-control", "--min-int8-share", "2"), "min_int8_share"),
    (("--int8", "--accuracy-control", "--control-margin", "0"), "control_margin"),
    (("--parity-tol", "-1"), "parity_tol"),
    (("--opset", "5"), "opset"),
    (("--accuracy-control",), "--int8"),
])
def test_argument_errors_are_refused_before_any_work(trained, tmp_path, capsys, flags, named):
    out = tmp_path / "export"
    t0 = time.perf_counter()
    assert main(_argv(trained / "best.pt", out, tmp_path / "data", *flags)) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert named in line
    assert not out.exists() and not (tmp_path / "data").exists()  # nothing built, nothing generated
    assert time.perf_counter() - t0 < 20  # refused at once, not after the ONNX and INT8 models


@pytest.mark.parametrize("flags", [("--severities", "abc"), ("--backends", "onnx,tpu")])
def test_unparsable_flags_are_usage_errors(trained, tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as stop:
        main(_argv(trained / "best.pt", tmp_path / "export", tmp_path / "data", *flags))
    assert stop.value.code == BAD_INPUT and "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("flags, named", [
    (("--n", "5"), "n and sweep_n"),
    (("--sweep-n", "0", "--severities", "1"), "n and sweep_n"),
    (("--severity", "9"), "severity"),
    (("--workers", "0"), "workers"),
])
def test_drift_tool_refuses_bad_flags_before_loading_anything(tmp_path, capsys, flags, named):
    from runtime.drift.__main__ import main as drift_main

    missing = tmp_path / "nothing.onnx"  # a model error would come later: the flag is named first
    assert drift_main(["--reference", str(missing), "--candidate", str(missing), "--out", str(tmp_path / "r"),
                       "--data-root", str(tmp_path / "data"), *flags]) == BAD_INPUT
    assert named in error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists() and not (tmp_path / "data").exists()


# ------------------------------------------------------------------------------------------------ item 15: typed fields


def _edit(ckpt: dict, field: str, value) -> dict:
    keys = field.split(".")
    target = ckpt
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return ckpt


@pytest.fixture(scope="module")
def good_checkpoint(trained):
    return torch.load(trained / "best.pt", weights_only=True)


@pytest.mark.parametrize("field, value", [
    ("model_config.dropout", "lots"),
    ("preprocessing", None),
    ("metrics", [1, 2]),
    ("class_names", None),
    ("model", None),
    ("model_config", None),
    ("train_config", [0]),
    ("preprocessing.size", "64"),
])
def test_wrongly_typed_checkpoint_fields_are_one_line_naming_the_field(good_checkpoint, tmp_path, capsys, field,
                                                                      value):
    import copy

    path = tmp_path / "edited.pt"
    torch.save(_edit(copy.deepcopy(good_checkpoint), field, value), path)
    out = tmp_path / "export"
    assert main(_argv(path, out, tmp_path / "data", "--backends", "onnx")) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert str(path) in line and field.split(".")[-1] in line
    assert not (out / "manifest.json").exists() and not list(out.glob("*.onnx")) and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------------------ item 14: Ctrl-C


def _interrupt_when(cmd: list[str], ready, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.Popen([sys.executable, *cmd], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # a process, interrupted
@pytest.mark.parametrize("when", ["staging", "onnx-written"])
def test_ctrl_c_in_export_is_one_line_130_and_keeps_the_previous_export(exported, trained, tmp_path, when):
    out = tmp_path / "export"
    shutil.copytree(exported, out)
    before = _snapshot(out)

    def ready():
        stages = list(out.glob(".dualpath-export-stage-*"))
        return bool(stages) and (when == "staging" or any((s / "model_fp32.onnx").is_file() for s in stages))

    done = _interrupt_when(["-m", "export", *_argv(trained / "best.pt", out, tmp_path / "data", "--backends", "onnx")],
                           ready)
    assert done.returncode == INTERRUPTED, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), done.stderr
    assert _snapshot(out) == before and not list(out.glob(".dualpath-export-stage-*")) and not temporaries(out)


@pytest.mark.slow  # a process, interrupted
def test_ctrl_c_in_calibration_is_one_line_130_and_leaves_nothing(tmp_path):
    out = tmp_path / "calib"
    done = _interrupt_when(["-m", "calibration", "--n", "6000", "--out", str(out)],
                           lambda: any(".tmp" in p.name for p in tmp_path.iterdir()))
    assert done.returncode == INTERRUPTED, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted") and "Traceback" not in done.stderr, done.stderr
    assert not out.exists() and not temporaries(tmp_path)
