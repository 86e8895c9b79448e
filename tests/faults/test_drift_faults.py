"""python -m runtime.drift as a hostile user runs it (issue 19): budgets that cannot be talked round, outputs never
written over inputs, a failed or interrupted run that leaves the previous report as it was, baselines validated
against their schema. Tiny hand-built ONNX models (no torch), 20 scenes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dualpath import contract
from dualpath.exitcodes import BAD_INPUT, INTERRUPTED, OK, VERDICT
from fault_checks import ROOT, default_sigint, error_line

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from runtime.backends.metadata import ModelMetadata  # noqa: E402
from runtime.drift.__main__ import main  # noqa: E402

N = "20"


def _model(path, rotate: int = 0):
    """image -> probs = sigmoid(GAP(image) @ W), recon = tanh(image); `rotate` shifts the 20 class scores (every
    label wrong, metadata untouched)."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(3, contract.NUM_CLASSES)).astype(np.float32) * 4
    w = np.roll(w, rotate, axis=1)
    s = contract.IMAGE_SIZE
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]), helper.make_node("Sigmoid", ["logits"], ["probs"]),
         helper.make_node("Tanh", ["image"], ["recon"])],
        "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, s, s])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", contract.NUM_CLASSES]),
         helper.make_tensor_value_info("recon", TensorProto.FLOAT, ["batch", 3, s, s])],
        [numpy_helper.from_array(w, "w")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    for key, value in ModelMetadata.from_contract(precision="fp32").to_props().items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("drift-models")
    return {"ref": _model(d / "ref.onnx"), "same": _model(d / "same.onnx"), "rotated": _model(d / "rot.onnx", 1),
            "data": tmp_path_factory.mktemp("drift-data")}


def drift(models, out, candidate="same", *extra, reference=None):
    return main(["--reference", str(reference or models["ref"]), "--candidate", str(models.get(candidate, candidate)),
                 "--out", str(out), "--n", N, "--data-root", str(models["data"]), "--no-plots", *map(str, extra)])


def _report(out):
    return json.loads((out / "drift.json").read_text())


LOOSE = ["--budget", "accuracy=1", "--budget", "macro_map=1", "--budget", "ssim=1"]


# ------------------------------------------------------------------------------------------------ 9: budgets


@pytest.mark.parametrize("extra, named", [
    (["--budget", "ssim=0.003"], "label_flip_rate"),  # the case: it passed, exit 0
    (["--budget", "accuracy=1"], "label_flip_rate"),
    (["--budget", "macro_map=1"], "label_flip_rate"),
    (LOOSE, "label_flip_rate"),  # every metric loosened: the default label-flip budget still holds the gate
    (["--budget", "label_flip_rate=0.05"], "label_flip_rate"),
    (["--budget", "label_flip_rate=5%", "--budget", "ssim=1"], "label_flip_rate"),
    (["--budgets-file", "{tmp}/ssim.json"], "label_flip_rate"),
])
def test_rotated_class_scores_fail_whatever_budget_is_given(models, tmp_path, capsys, extra, named):
    """Issue 19, 9: any --budget replaced all the defaults, so every-label-wrong passed with --budget ssim=0.003."""
    (tmp_path / "ssim.json").write_text('{"ssim": {"abs": 1}}')
    extra = [e.format(tmp=tmp_path) for e in extra]
    assert drift(models, tmp_path / "out", "rotated", *extra) == VERDICT
    assert "PAST BUDGET" in capsys.readouterr().err
    report = _report(tmp_path / "out")
    assert any(v.startswith(named) for v in report["violations"]), report["violations"]
    assert {"accuracy", "macro_map", "ssim", "label_flip_rate"} <= set(report["budgets"])


def test_every_budget_loosened_lets_it_pass_and_the_report_names_them(models, tmp_path, capsys):
    assert drift(models, tmp_path, "rotated", *LOOSE, "--budget", "label_flip_rate=1") == OK
    assert _report(tmp_path)["budgets"]["label_flip_rate"] == {"abs": 1.0}
    assert "budget 100.00%" in (tmp_path / "drift.md").read_text()


def test_the_same_model_passes_the_default_budgets(models, tmp_path):
    assert drift(models, tmp_path) == OK
    assert _report(tmp_path)["outputs"]["label_flip_rate"] == 0


@pytest.mark.parametrize("extra, message", [
    (["--budget", "label_flip_rate=-0.1"], "finite number >= 0"),
    (["--budgets-file", "{tmp}/rel.json"], "absolute limit only"),
    (["--budget", "flips=0.05"], "no budget possible for 'flips'"),
])
def test_a_bad_label_flip_budget_is_exit_2_one_line(models, tmp_path, capsys, extra, message):
    (tmp_path / "rel.json").write_text('{"label_flip_rate": {"rel": 0.1}}')
    assert drift(models, tmp_path / "out", "same", *[e.format(tmp=tmp_path) for e in extra]) == BAD_INPUT
    assert message in error_line(capsys.readouterr().err)


def test_export_and_drift_share_the_defaults():
    """python -m export takes its budgets from the same budgets_from_args: docs/design.md's four, flags on top."""
    import argparse

    from runtime.drift.budgets import DEFAULT_BUDGETS, budgets_from_args

    got = budgets_from_args(argparse.Namespace(budget=["ssim=0.01"], budgets_file=None))
    assert set(got) == set(DEFAULT_BUDGETS) and got["ssim"].abs == 0.01 and got["label_flip_rate"].abs == 0.05


# ------------------------------------------------------------------------------------------------ 1: outputs vs inputs


@pytest.mark.parametrize("case", ["baseline-in-out", "accept-over-reference", "accept-over-candidate-link",
                                  "accept-over-budgets-file", "report-hard-linked-to-baseline", "accept-over-ir-bin",
                                  "accept-is-the-report"])
def test_no_report_or_baseline_is_written_over_an_input(models, tmp_path, capsys, case):
    """Issue 19, 1 (no command writes over a file it reads), for runtime.drift: refused before any work."""
    out, ref, cand = tmp_path / "out", tmp_path / "ref.onnx", tmp_path / "cand.onnx"
    ref.write_bytes(models["ref"].read_bytes())
    cand.write_bytes(models["same"].read_bytes())
    out.mkdir()
    baseline = out / "drift.json"
    baseline.write_text('{"config": {"n": 20, "seed": 2000003, "severity": 1.0}, "candidate": {}}')
    budgets = tmp_path / "budgets.json"
    budgets.write_text('{"ssim": {"abs": 0.01}}')
    extra, reference = [], ref
    if case == "baseline-in-out":
        extra = ["--baseline", baseline]
    elif case == "accept-over-reference":
        extra = ["--accept", ref]
    elif case == "accept-over-candidate-link":
        (tmp_path / "link.json").symlink_to(cand)
        extra = ["--accept", tmp_path / "link.json"]
    elif case == "accept-over-budgets-file":
        extra = ["--budgets-file", budgets, "--accept", budgets]
    elif case == "report-hard-linked-to-baseline":
        os.link(budgets, tmp_path / "hard.json")
        baseline.unlink()
        os.link(tmp_path / "hard.json", baseline)
        extra = ["--baseline", tmp_path / "hard.json"]
    elif case == "accept-over-ir-bin":
        (tmp_path / "ref.xml").write_text("<net/>")
        (tmp_path / "ref.bin").write_bytes(b"weights")
        reference, extra = tmp_path / "ref.xml", ["--accept", tmp_path / "ref.bin"]
    elif case == "accept-is-the-report":
        extra = ["--accept", out / "drift.md"]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert drift(models, out, cand, *extra, reference=reference) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "which this command reads" in line or "are the same file" in line, line
    assert all(p.read_bytes() == b for p, b in before.items())


def test_accept_may_replace_the_baseline_it_was_gated_against(models, tmp_path, capsys):
    """--accept B --baseline B is the CI loop: gate against the last accepted report, then make this one the baseline
    (written only after the gate passed, atomically)."""
    baseline = tmp_path / "baseline.json"
    assert drift(models, tmp_path / "a", "same", "--accept", baseline) == OK
    first = baseline.read_text()
    assert drift(models, tmp_path / "b", "same", "--baseline", baseline, "--accept", baseline) == OK
    assert baseline.read_text() != first and json.loads(baseline.read_text())["baseline"]["violations"] == []


# ------------------------------------------------------------------------------------------------ 4, 14: failures


@pytest.fixture(scope="module")
def pristine(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("drift-report") / "report"
    assert main(["--reference", str(models["ref"]), "--candidate", str(models["same"]), "--out", str(out), "--n", N,
                 "--data-root", str(models["data"])]) == OK
    return out


@pytest.fixture
def previous(pristine, tmp_path):
    """A report folder holding a passing report (with plots), and its bytes."""
    import shutil

    out = shutil.copytree(pristine, tmp_path / "report")
    return out, {p.name: p.read_bytes() for p in out.iterdir()}


def _unchanged(out, before):
    return {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_that_fails_midway_leaves_the_previous_report(models, previous, tmp_path, capsys):
    """The baseline is found to be on other scenes after both models ran: exit 2, the old report as it was."""
    out, before = previous
    baseline = tmp_path / "b.json"
    baseline.write_text('{"config": {"n": 999, "seed": 1, "severity": 1}, "candidate": {"accuracy": 1, '
                        '"macro_map": 1, "ssim": 1}}')
    assert drift(models, out, "rotated", "--baseline", baseline) == BAD_INPUT
    assert "other scenes" in error_line(capsys.readouterr().err)
    assert _unchanged(out, before)


@pytest.mark.parametrize("where", ["run_backend", "write_plots", "markdown"])
def test_ctrl_c_is_one_line_exit_130_and_leaves_the_previous_report(models, previous, capsys, monkeypatch, where):
    """Issue 19, 14: Ctrl-C printed a KeyboardInterrupt traceback. Interrupted while running a model, drawing the
    plots (files already staged) or writing drift.md: exit 130, one line, the old report whole, no temporaries."""
    import runtime.drift.report as report

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, where, interrupt)
    out, before = previous
    code = main(["--reference", str(models["ref"]), "--candidate", str(models["rotated"]), "--out", str(out),
                 "--n", N, "--data-root", str(models["data"]), *([] if where == "write_plots" else ["--no-plots"])])
    err = capsys.readouterr().err
    assert code == INTERRUPTED and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted: nothing half-written")
    assert _unchanged(out, before)


def test_a_new_report_replaces_the_old_plots_it_did_not_draw(models, previous):
    out, _ = previous
    (out / "severity.png").write_bytes(b"an older sweep")
    assert drift(models, out) == OK  # --no-plots
    assert not [p for p in out.iterdir() if p.suffix == ".png"] and _report(out)["passed"]


@pytest.mark.slow  # a process, signalled
def test_the_real_command_on_ctrl_c(models, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.drift", "--reference", str(models["ref"]),
                             "--candidate", str(models["rotated"]), "--out", str(out), "--n", "3000",
                             "--data-root", str(tmp_path / "data")],
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "data").exists() and time.monotonic() < deadline:  # generating the 3000 scenes
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("interrupted")] and not (out / "drift.json").exists()


# ------------------------------------------------------------------------------------------------ 15: baselines


GOOD = {"config": {"n": 20, "seed": 2000003, "severity": 1.0},
        "candidate": {"accuracy": 0.9, "macro_map": 0.5, "ssim": 0.5}, "artifacts": {"candidate": "x.onnx"}}


@pytest.mark.parametrize("content, field", [
    ("[]", "must be a JSON object"),  # the three
    ('{"config": {"n": 20, "seed": 2000003, "severity": 1}, "candidate": {"accuracy": 0.9, "ssim": 0.5}}',
     "candidate.macro_map"),
    ("null", "must be a JSON object"),
    ('"drift"', "must be a JSON object"),
    ("{}", "field config"),
    ('{"config": null, "candidate": {}}', "field config"),
    ('{"config": {"n": 20, "seed": 2000003}, "candidate": {}}', "config.severity"),
    ('{"config": {"n": "20", "seed": 2000003, "severity": 1}, "candidate": {}}', "config.n"),
    ('{"config": {"n": 20, "seed": 2000003, "severity": 1}, "candidate": []}', "field candidate"),
    (json.dumps(GOOD | {"candidate": GOOD["candidate"] | {"macro_map": None}}), "candidate.macro_map"),
    (json.dumps(GOOD | {"candidate": GOOD["candidate"] | {"ssim": "0.5"}}), "candidate.ssim"),
    (json.dumps(GOOD).replace("0.9", "NaN"), "candidate.accuracy"),
    (json.dumps(GOOD | {"artifacts": []}), "field artifacts"),
])
def test_a_malformed_baseline_is_exit_2_naming_the_file_and_field(models, tmp_path, capsys, content, field):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content)
    t0 = time.perf_counter()
    assert drift(models, tmp_path / "out", "same", "--baseline", baseline) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert str(baseline) in line and field in line, line
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "out" / "drift.json").exists()


def test_a_baseline_that_lacks_a_budgeted_metric_names_it(models, tmp_path, capsys):
    """The budgets decide what a baseline must hold: --budget psnr=0.5 needs candidate.psnr."""
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(GOOD))
    assert drift(models, tmp_path / "out", "same", "--baseline", baseline, "--budget", "psnr=0.5") == BAD_INPUT
    assert "candidate.psnr" in error_line(capsys.readouterr().err)
