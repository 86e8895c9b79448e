"""benchmarks.activation_outliers: the input range of every quantised layer, per checkpoint, on the same scenes."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def outliers(load_benchmark):
    return load_benchmark("activation_outliers")


def test_every_conv_and_linear_input_is_measured(outliers, tiny_run, tmp_path, capsys):
    import torch

    from train.checkpoint import load_model

    out = tmp_path / "o.json"
    assert outliers.main(["--run", str(tiny_run), "--run", str(tiny_run / "best.pt"), "--n", "8", "--threads", "1",
                          "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    model, _ = load_model(tiny_run / "best.pt")
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    first, second = saved["layers"]
    assert list(first) == layers and first == second  # the same model on the same scenes
    assert all(0 <= s["p999"] <= s["max"] for s in first.values())
    assert "| layer |" in capsys.readouterr().out


def test_the_ratio_flags_an_outlier():
    import torch

    from benchmarks.activation_outliers import ratio

    x = torch.ones(10_000)
    x[0] = 100.0
    s = {"max": x.max().item(), "p999": torch.quantile(x, 0.999).item()}
    assert ratio(s) == pytest.approx(100.0)


def test_a_missing_run_is_one_line(outliers, tmp_path, capsys):
    assert outliers.main(["--run", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "best.pt" in err[0] and "does not exist" in err[0]
