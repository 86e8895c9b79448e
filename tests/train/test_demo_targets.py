"""benchmarks/demo_targets.py: design.md's recognition targets read from a finished run folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def targets(load_benchmark):
    return load_benchmark("demo_targets")


def _with_metrics(run: Path, dest: Path, **metrics) -> Path:
    """A copy of a real run folder whose held-out metrics say `metrics`."""
    shutil.copytree(run, dest)
    data = json.loads((dest / "metrics.json").read_text())
    (dest / "metrics.json").write_text(json.dumps(data | metrics))
    return dest


def test_a_real_tiny_run_is_read_and_judged_by_its_start(targets, tiny_run, tmp_path, capsys):
    result = targets.read_run(tiny_run)
    assert result["pretrained"] == "none" and result["folds"] == 1 and result["epochs"] == 2
    assert 0 < result["training_minutes"] < 12
    saved = json.loads((tiny_run / "metrics.json").read_text())
    assert result["metrics"] == {k: saved[k] for k in ("macro_map", "accuracy", "ssim")}
    # from random init: the from-scratch targets (a tiny run misses them: a verdict, exit 1)
    out = tmp_path / "t.json"
    assert targets.main(["--run", str(tiny_run), "--out", str(out)]) == 1
    assert "macro_map >= 0.55" in capsys.readouterr().out
    assert [row["met"] for row in json.loads(out.read_text())["targets"]][-1] is True  # training <= 12 min


def test_pretrained_runs_get_the_pretrained_targets_and_demo_time(targets, tiny_run, tmp_path, capsys):
    run = _with_metrics(tiny_run, tmp_path / "good", macro_map=0.80, accuracy=0.96, ssim=0.76)
    config = json.loads((run / "config.json").read_text())
    config["train_config"]["pretrained"] = "weights/densenet_small/backbone.pth"
    (run / "config.json").write_text(json.dumps(config))
    assert targets.main(["--run", str(run), "--demo-minutes", "11.8", "--out", str(tmp_path / "a.json")]) == 0
    text = capsys.readouterr().out
    assert "macro_map >= 0.75" in text and "make demo < 20 min" in text and "NOT MET" not in text
    assert targets.main(["--run", str(run), "--demo-minutes", "21", "--out", str(tmp_path / "b.json")]) == 1
    bad = _with_metrics(run, tmp_path / "bad", ssim=0.74)
    assert targets.main(["--run", str(bad), "--out", str(tmp_path / "c.json")]) == 1
    assert "ssim >= 0.75" in capsys.readouterr().out


def test_a_folder_that_is_not_a_finished_run_is_exit_2(targets, tmp_path, capsys):
    assert targets.main(["--run", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a finished training run" in err
