"""The training-speed benchmark runs and writes its JSON (a smoke test: no timing is asserted)."""
from __future__ import annotations

import importlib
import json


def test_train_speed_benchmark_writes_a_table_and_json(tmp_path, capsys):
    module = importlib.import_module("benchmarks.train_speed")
    argv = ["--models", "dualpath", "densenet", "--batch-sizes", "4", "--backbone", "densenet_tiny",
            "--devices", "cpu", "--steps", "1", "--warmup", "0", "--out", str(tmp_path / "speed.json")]
    assert module.main(argv) == 0
    results = json.loads((tmp_path / "speed.json").read_text())["results"]
    assert {(r["model"], r["channels_last"]) for r in results} == {
        ("dualpath", False), ("dualpath", True), ("densenet", False), ("densenet", True)}
    assert all(r["error"] is None and r["images_per_s"] > 0 for r in results)
    assert "img/s" in capsys.readouterr().out
