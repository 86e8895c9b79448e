"""`make gpu-check`'s script end to end at --tiny size on the CPU: speed rows, fp16 pretraining, the four rows."""
from __future__ import annotations

import importlib
import json

import pytest


@pytest.fixture(scope="module")
def gpu_check():
    return importlib.import_module("benchmarks.gpu_check")


@pytest.mark.slow  # speed rows, a pretraining and four trainings
def test_tiny_run_writes_every_section(gpu_check, tmp_path):
    out = tmp_path / "out"
    assert gpu_check.main(["--tiny", "--out", str(out), "--work", str(tmp_path / "work"), "--workers", "1"]) == 0
    result = json.loads((out / "gpu_check.json").read_text())
    assert {(r["model"], r["precision"], r["channels_last"]) for r in result["speed"]} == {
        (m, p, cl) for m in ("dualpath", "cae", "densenet") for p in ("fp32", "bf16") for cl in (False, True)}
    assert all(r["error"] is None and r["images_per_s"] > 0 for r in result["speed"])
    pre = result["pretrain"]
    assert pre["ok"] and pre["dtype"] == "float16" and pre["size_mib"] < gpu_check.MAX_WEIGHTS_MIB
    card = json.loads((out / "pretrain/backbone.json").read_text())
    assert card["backbone"] == "densenet_tiny" and (out / "pretrain/backbone.pth").is_file()
    assert set(result["compare"]["rows"]) == {"cae_bce", "densenet_bce", "dualpath_bce", "dualpath_asl"}
    robust = result["compare"]["robustness"]  # the robustness study at the paper's scale on a GPU (issue 20)
    assert [float(v) for v in robust["severities"]] == [0.0, 1.0, 2.0, 3.0] and (out / "compare/robustness.png").is_file()
    assert (out / "compare/comparison.md").is_file() and "## Scene pretraining" in (out / "gpu_check.md").read_text()
    assert sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) < 2**20  # small enough to bring back


def test_without_a_gpu_it_asks_for_tiny(gpu_check, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    assert "--tiny" in capsys.readouterr().err
