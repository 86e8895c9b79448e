"""runtime.drift: budgets, the report's contents, the CLI's exit codes (a CI gate), baselines, the sweep."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from dualpath import contract  # noqa: E402
from dualpath.exitcodes import BAD_INPUT, OK, VERDICT  # noqa: E402
from dualpath.metrics import METRIC_KEYS  # noqa: E402
from runtime.drift import compare, parse_budget  # noqa: E402
from runtime.drift.__main__ import main  # noqa: E402
from runtime.drift.budgets import Budget, check, load_budgets, scaled  # noqa: E402
from test_backends import write_tiny_model  # noqa: E402  (same folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("drift-models")
    return {
        "ref": write_tiny_model(d / "ref.onnx", seed=0),
        "same": write_tiny_model(d / "same.onnx", seed=0),
        "worse": write_tiny_model(d / "worse.onnx", seed=5, scale=-1.0),  # other classifier, inverted recon
        "data": tmp_path_factory.mktemp("drift-data"),
    }


def _run(models, out, *extra):
    return main(["--reference", str(models["ref"]), "--candidate", str(models[extra[0]]), "--out", str(out),
                 "--n", "24", "--data-root", str(models["data"]), "--no-plots", *extra[1:]])


def test_budget_parsing_and_direction():
    assert parse_budget("accuracy=0.003") == Budget("accuracy", abs=0.003)
    assert parse_budget("macro_map=2%") == Budget("macro_map", rel=0.02)
    assert parse_budget("psnr=0.5,1%") == Budget("psnr", abs=0.5, rel=0.01)
    for bad in ("accuracy", "accuracy=x", "nonsense=0.1", "accuracy=-1"):
        with pytest.raises(ValueError):
            parse_budget(bad)
    for text in ("accuracy=0.003", "macro_map=2%", "psnr=0.5,1%"):
        assert parse_budget(text).flag() == text  # how --help shows the defaults
    hamming = Budget("hamming_loss", abs=0.01)
    assert hamming.violation(0.10, 0.105) is None and "hamming_loss" in hamming.violation(0.10, 0.12)
    acc = Budget("accuracy", abs=0.003)
    assert acc.violation(0.90, 0.95) is None  # improvements never fail
    assert check({"accuracy": acc}, {"accuracy": 0.9}, {"accuracy": 0.89})[0].startswith("accuracy:")


def test_scaled_budgets_tighten_every_limit():
    tight = scaled({"ssim": Budget("ssim", abs=0.004, rel=0.02), "accuracy": Budget("accuracy", abs=0.003)}, 0.5)
    assert tight["ssim"] == Budget("ssim", abs=0.002, rel=0.01) and tight["accuracy"] == Budget("accuracy", abs=0.0015)
    assert check(tight, {"ssim": 0.9, "accuracy": 0.9}, {"ssim": 0.8975, "accuracy": 0.9}) != []  # 0.0025 > 0.002
    assert check(tight, {"ssim": 0.9, "accuracy": 0.9}, {"ssim": 0.8985, "accuracy": 0.899}) == []


def test_budgets_file(tmp_path):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"ssim": {"abs": 0.01}, "macro_map": {"rel": 0.05}}))
    assert load_budgets(f) == {"ssim": Budget("ssim", abs=0.01), "macro_map": Budget("macro_map", rel=0.05)}
    f.write_text(json.dumps({"ssim": 0.01}))
    with pytest.raises(ValueError, match="abs"):
        load_budgets(f)


def test_compare_of_identical_outputs_has_no_drift():
    rng = np.random.default_rng(0)
    labels = (rng.random((30, contract.NUM_CLASSES)) < 0.1).astype(np.uint8)
    labels[:, 0] = 1
    clean = rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8)
    out = {"probs": rng.random((30, contract.NUM_CLASSES)).astype(np.float32),
           "recon": rng.uniform(-1, 1, (30, 3, 64, 64)).astype(np.float32)}
    r = compare(labels, clean, out, out)
    assert tuple(r["delta"]) == METRIC_KEYS  # every metrics.json key, from the one list
    assert all(v == 0 for v in r["delta"].values())
    assert r["outputs"]["label_flip_rate"] == 0 and r["outputs"]["sqnr_probs_db"] == float("inf")


def test_same_model_passes_and_writes_the_report(models, tmp_path):
    assert _run(models, tmp_path, "same") == OK
    result = json.loads((tmp_path / "drift.json").read_text())
    assert result["passed"] and result["n"] == 24
    assert tuple(result["reference"]) == METRIC_KEYS
    assert len(result["per_class"]) == contract.NUM_CLASSES
    assert result["outputs"]["sqnr_probs_db"] is None  # infinite: identical outputs
    assert "PASSED" in (tmp_path / "drift.md").read_text()


def test_past_budget_exits_1_naming_the_metrics(models, tmp_path, capsys):
    assert _run(models, tmp_path, "worse", "--budget", "ssim=0.001") == VERDICT
    err = capsys.readouterr().err
    assert "PAST BUDGET" in err and "ssim" in err
    result = json.loads((tmp_path / "drift.json").read_text())
    assert not result["passed"] and any(v.startswith("ssim") for v in result["violations"])  # defaults stay too


# every default budget loosened: a budget given replaces only its own metric's (runtime.drift.budgets)
LOOSE = ("--budget", "ssim=1", "--budget", "accuracy=1", "--budget", "macro_map=1", "--budget", "label_flip_rate=1")


def test_loose_budget_passes_the_worse_model(models, tmp_path):
    assert _run(models, tmp_path, "worse", *LOOSE) == OK


def test_baseline_gate_and_accept(models, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert _run(models, tmp_path / "a", "same", "--accept", str(baseline)) == OK
    assert baseline.is_file()
    # against the reference the loose budget holds, against the accepted (better) baseline it does not
    code = _run(models, tmp_path / "b", "worse", "--budget", "ssim=0.5", "--baseline", str(baseline))
    result = json.loads((tmp_path / "b" / "drift.json").read_text())
    assert code == OK or result["baseline"]["violations"]
    code = _run(models, tmp_path / "c", "worse", "--budget", "ssim=0.0001,0%", "--baseline", str(baseline))
    assert code == VERDICT
    assert any("(baseline)" in v for v in json.loads((tmp_path / "c" / "drift.json").read_text())["violations"])


def test_baseline_on_other_scenes_is_an_error(models, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert _run(models, tmp_path / "a", "same", "--accept", str(baseline)) == OK
    assert _run(models, tmp_path / "b", "same", "--severity", "2", "--baseline", str(baseline)) == BAD_INPUT
    assert "other scenes" in capsys.readouterr().err


def test_errors_exit_2(models, tmp_path, capsys):
    assert main(["--reference", str(tmp_path / "none.onnx"), "--candidate", str(models["same"]),
                 "--out", str(tmp_path)]) == BAD_INPUT
    assert "no model file" in capsys.readouterr().err
    assert _run(models, tmp_path, "same", "--budget", "bogus=1") == BAD_INPUT


def test_severity_sweep_and_plots(models, tmp_path):
    assert main(["--reference", str(models["ref"]), "--candidate", str(models["worse"]), "--out", str(tmp_path),
                 "--n", "20", "--sweep-n", "20", "--severities", "0,2", "--data-root", str(models["data"]),
                 *LOOSE]) == OK
    result = json.loads((tmp_path / "drift.json").read_text())
    assert [r["severity"] for r in result["severity_sweep"]] == [0.0, 2.0]
    for png in ("probs.png", "per_class_ap.png", "recon.png", "severity.png"):
        assert (tmp_path / png).stat().st_size > 1000
    assert "Drift under degradation" in (tmp_path / "drift.md").read_text()
