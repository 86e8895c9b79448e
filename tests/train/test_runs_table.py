"""benchmarks/runs_table.py: finished training runs side by side on the same held-out scenes."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def runs_table(load_benchmark):
    return load_benchmark("runs_table")


def _copy(run: Path, dest: Path, config: dict | None = None, metrics: dict | None = None,
          test: list | None = None) -> Path:
    """A copy of a real run folder with its train_config, metrics or held-out test list changed."""
    shutil.copytree(run, dest)
    if config:
        data = json.loads((dest / "config.json").read_text())
        data["train_config"] |= config
        (dest / "config.json").write_text(json.dumps(data))
    if metrics:
        data = json.loads((dest / "metrics.json").read_text())
        (dest / "metrics.json").write_text(json.dumps(data | metrics))
    if test is not None:
        data = json.loads((dest / "splits.json").read_text())
        data["test"] = test
        (dest / "splits.json").write_text(json.dumps(data))
    return dest


def test_two_runs_side_by_side_with_the_field_they_differ_in(runs_table, tiny_run, tmp_path, capsys):
    saved = json.loads((tiny_run / "metrics.json").read_text())
    lr2 = json.loads((tiny_run / "config.json").read_text())["train_config"]["phase2_lr"]
    a = _copy(tiny_run, tmp_path / "a")
    b = _copy(tiny_run, tmp_path / "lr2-half", config={"phase2_lr": lr2 / 2}, metrics={"macro_map": 0.4321})
    out = tmp_path / "results" / "table.json"  # parent folder created
    assert runs_table.main(["--runs", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["differing_fields"] == ["phase2_lr"]
    assert [r["name"] for r in result["runs"]] == ["a", "lr2-half"]
    assert [r["macro_map"] for r in result["runs"]] == [saved["macro_map"], 0.4321]
    assert [r["differs"] for r in result["runs"]] == [{"phase2_lr": lr2}, {"phase2_lr": lr2 / 2}]
    assert result["machine"]["cores"] >= 1
    weakest = result["runs"][0]["weakest"]
    aps = sorted(r["ap"] for r in saved["per_class"] if r.get("ap") is not None)
    assert [w["ap"] for w in weakest] == aps[:3]
    assert all(0 < r["training_minutes"] < 12 for r in result["runs"])
    lines = text.splitlines()
    assert "-core" in lines[0]  # the machine first
    row = next(line for line in lines if line.startswith("lr2-half"))
    assert f"phase2_lr={lr2 / 2:g}" in row and "0.4321" in row
    assert weakest[0]["name"] in row
    assert f"phase2_lr={lr2:g}" in next(line for line in lines if line.startswith("a "))
    assert "epochs=" not in text  # fields the runs share are not shown


def test_a_field_a_run_lacks_counts_at_its_default(runs_table, tiny_run, tmp_path):
    """A run written before a TrainConfig field existed had that field's default: no difference."""
    a = _copy(tiny_run, tmp_path / "a", config={"backbone_lr_scale": 1.0})
    b = tmp_path / "old"
    shutil.copytree(tiny_run, b)
    data = json.loads((b / "config.json").read_text())
    data["train_config"].pop("backbone_lr_scale", None)
    (b / "config.json").write_text(json.dumps(data))
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", str(a), str(b), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["differing_fields"] == []
    assert result["runs"][1]["defaulted_fields"] == ["backbone_lr_scale"]


def test_runs_from_other_weights_at_the_same_path_are_told_apart(runs_table, tiny_run, tmp_path, capsys):
    """A new shipped backbone keeps its path: the table names the weights' sha256 where they differ."""
    runs = []
    for name, sha in (("old", "bfe9549a" + "0" * 56), ("new", "3bbb9bfd" + "0" * 56)):
        run = _copy(tiny_run, tmp_path / name)
        data = json.loads((run / "config.json").read_text())
        data["weights"] = {"pretrained": "weights/densenet_small/backbone.pth", "sha256": sha}
        (run / "config.json").write_text(json.dumps(data))
        runs.append(run)
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", *map(str, runs), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["differing_fields"] == ["weights"]
    assert [r["differs"] for r in result["runs"]] == [{"weights": "bfe9549a"}, {"weights": "3bbb9bfd"}]
    assert "weights=3bbb9bfd" in next(line for line in capsys.readouterr().out.splitlines() if line.startswith("new"))
    assert runs_table.main(["--runs", str(runs[0]), str(_copy(runs[0], tmp_path / "same")), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["differing_fields"] == []  # the same weights: nothing to show


def test_runs_of_other_held_out_scenes_are_refused(runs_table, tiny_run, tmp_path, capsys):
    test = json.loads((tiny_run / "splits.json").read_text())["test"]
    a = _copy(tiny_run, tmp_path / "a")
    other = _copy(tiny_run, tmp_path / "other-split", test=test[:-1])
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", str(a), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "other-split" in err and "same data and split" in err
    assert not out.exists()


def test_runs_of_another_data_set_are_refused(runs_table, tiny_run, tmp_path, capsys):
    a = _copy(tiny_run, tmp_path / "a")
    other = _copy(tiny_run, tmp_path / "other-data")
    data = json.loads((other / "config.json").read_text())
    data["data"] = {**(data.get("data") or {}), "seed": 99}
    (other / "config.json").write_text(json.dumps(data))
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", str(a), str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "other-data" in err and "config.json data" in err and not out.exists()


def test_a_folder_that_is_not_a_run_is_refused(runs_table, tiny_run, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", str(tiny_run), str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty is not a finished training run" in err
    assert runs_table.main(["--runs", str(tiny_run), str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not out.exists()


def test_one_run_is_not_a_comparison(runs_table, tiny_run, tmp_path, capsys):
    out = tmp_path / "t.json"
    assert runs_table.main(["--runs", str(tiny_run), "--out", str(out)]) == 2
    assert "at least two" in capsys.readouterr().err and not out.exists()


def test_the_script_is_torch_free():
    import subprocess

    root = Path(__file__).resolve().parents[2]
    code = "import sys, benchmarks.runs_table as m; m.with_defaults([{}]); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
