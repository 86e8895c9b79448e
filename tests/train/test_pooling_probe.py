"""benchmarks/pooling_probe.py: linear probes on a run's frozen features, beside the model's own head."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def pooling_probe(load_benchmark):
    return load_benchmark("pooling_probe")


def test_probes_of_a_run(pooling_probe, tiny_run, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert pooling_probe.main(["--run", str(tiny_run), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    saved = json.loads((tiny_run / "metrics.json").read_text())
    assert list(result["rows"]) == ["the model's own head", *pooling_probe.ROWS]
    # the model's own head on the run's test scenes: the run's own held-out figure
    assert result["rows"]["the model's own head"]["macro_map"] == pytest.approx(saved["macro_map"], abs=1e-6)
    splits = json.loads((tiny_run / "splits.json").read_text())
    assert result["test_scenes"] == len(splits["test"]) and result["train_scenes"] > 0
    dims = {name: result["rows"][name]["dims"] for name in pooling_probe.ROWS}
    gap = dims["fused GAP (the model's)"]
    assert dims["fused, GAP + max"] == 2 * gap and dims["fused, per cell"] % gap == 0 and dims["fused, per cell"] > gap
    for row in result["rows"].values():
        assert all(0.0 <= ap <= 1.0 for ap in row["classes"].values())
    assert "teaspoon" in capsys.readouterr().out


def test_the_fused_gap_row_is_the_vector_the_head_reads(pooling_probe, tiny_run):
    import torch

    from dualpath.model.backbone import global_pool
    from dualpath.model.dual_path import fuse
    from train.checkpoint import load_model
    from train.data import Normalizer

    model, _ = load_model(tiny_run / "best.pt")
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    feats = pooling_probe.features(model, images)
    x = Normalizer(torch.device("cpu"), channels_last=False).inputs(torch.from_numpy(images))
    with torch.no_grad():
        skips, f5 = model.encoder(x)
        recon = model.reconstruction(model.decoder(f5, skips))
        z_c = model.classifier_backbone.embed(model.normalize(recon))
        fused = fuse(global_pool(f5), z_c, "multiply").numpy()
    assert np.allclose(feats["fused GAP (the model's)"], fused, atol=1e-6)


def test_bad_runs_are_exit_2(pooling_probe, tiny_run, tmp_path, capsys):
    assert pooling_probe.main(["--run", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "splits.json" in capsys.readouterr().err
    assert pooling_probe.main(["--run", str(tiny_run), "--c", "0", "--out", str(tmp_path / "x.json")]) == 2
    broken = tmp_path / "run"
    shutil.copytree(tiny_run, broken)
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    assert pooling_probe.main(["--run", str(broken), "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
