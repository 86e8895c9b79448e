"""benchmarks.pretrain_table: pretraining runs scored on the same held-out chunk, the card's figure reproduced."""
from __future__ import annotations

import json

import pytest

from benchmarks import pretrain_table
from train import pretrain

TINY = ["--backbone", "densenet_tiny", "--chunk", "16", "--held-out", "24", "--batch-size", "8",
        "--device", "cpu", "--threads", "1", "--quiet", "--scenes", "16"]


def test_runs_side_by_side_reproduce_their_cards(tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert pretrain.main([*TINY, "--out", str(first)]) == 0
    assert pretrain.main([*TINY, "--stem", "3x3", "--init", str(first / "pretrain.pt"), "--out", str(second)]) == 0
    out = tmp_path / "table.json"
    assert pretrain_table.main(["--run", str(first), "--run", str(second), "--n", "24", "--threads", "1",
                                "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "warning" not in printed.err
    rows = json.loads(out.read_text())["rows"]
    assert [r["stem"] for r in rows] == ["imagenet", "3x3"]
    assert [r["scenes_seen_total"] for r in rows] == [16, 32]  # the warm start's scenes count in the total
    third = tmp_path / "c"  # a chain of warm starts counts every run's scenes
    assert pretrain.main([*TINY, "--stem", "3x3", "--init", str(second / "pretrain.pt"), "--out", str(third)]) == 0
    assert json.loads((third / "backbone.json").read_text())["init"]["scenes_seen"] == 32
    for r, folder in zip(rows, (first, second)):
        card = json.loads((folder / "backbone.json").read_text())
        # the card's evaluation ran under the run's autocast (bf16 where the CPU has it), the table's in fp32
        assert r["noisy_map"] == pytest.approx(card["held_out"]["noisy"]["macro_map"], abs=2e-3)
        ap = card["held_out"]["noisy"]["per_class_ap"]
        assert r["per_class_ap"].keys() == ap.keys()
        assert all(v == w or abs(v - w) < 0.02 for v, w in zip(r["per_class_ap"].values(), ap.values()))
    assert printed.out.count("| " + str(second)) == 1


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert pretrain_table.main(["--run", str(tmp_path), "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no backbone.json" in err[0]
    assert not (tmp_path / "t.json").exists()


def test_held_out_of_a_training_run_scores_its_test_scenes_beside_its_own_model(tmp_path, tiny_run, capsys):
    backbone = tmp_path / "a"
    assert pretrain.main([*TINY, "--out", str(backbone)]) == 0
    out = tmp_path / "t.json"
    assert pretrain_table.main(["--run", str(backbone), "--held-out-of", str(tiny_run), "--threads", "1",
                                "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    test = json.loads((tiny_run / "splits.json").read_text())["test"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert result["held_out"] == {"run": str(tiny_run), "scenes": len(test)}
    pretrained, trained = result["rows"]
    assert pretrained["run"] == str(backbone) and 0.0 < pretrained["noisy_map"] <= 1.0
    assert (trained["noisy_map"], trained["noisy_accuracy"]) == (metrics["macro_map"], metrics["accuracy"])
    assert "its own dualpath model" in trained["run"]
    printed = capsys.readouterr().out
    assert f"the {len(test)} test scenes of {tiny_run}" in printed and printed.count("| " + str(tiny_run)) == 1

    # another data set under the run's data path: refused in one line, nothing written
    other = tmp_path / "other"
    import shutil

    shutil.copytree(tiny_run, other)
    splits = json.loads((other / "splits.json").read_text())
    (other / "splits.json").write_text(json.dumps(splits | {"labels_sha256": "0" * 64}))
    assert pretrain_table.main(["--run", str(backbone), "--held-out-of", str(other), "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read as the run saw it" in err[0] and "different data set" in err[0]
    assert not (tmp_path / "x.json").exists()
    assert pretrain_table.main(["--run", str(backbone), "--held-out-of", str(tmp_path), "--out", str(out)]) == 2
    assert "is not a finished `python -m train` run" in capsys.readouterr().err


def test_a_dualpath_run_is_scored_as_a_whole_model_with_its_ssim(tmp_path, tiny_run, capsys):
    run = tmp_path / "dp"
    # fp32 as the table scores (a near-random tiny model's scores tie under bf16, and its mAP on 24 scenes moves)
    assert pretrain.main([*TINY, "--model", "dualpath", "--no-amp", "--out", str(run)]) == 0
    out = tmp_path / "t.json"
    assert pretrain_table.main(["--run", str(run), "--n", "24", "--threads", "1", "--out", str(out)]) == 0
    assert "warning" not in capsys.readouterr().err  # the card's own figure reproduced
    (r,) = json.loads(out.read_text())["rows"]
    card = json.loads((run / "model.json").read_text())
    assert r["model"] == "dualpath" and r["clean_map"] is None
    assert r["ssim"] == pytest.approx(card["held_out"]["noisy"]["ssim"], abs=5e-3)
    assert pretrain_table.main(["--run", str(run), "--held-out-of", str(tiny_run), "--threads", "1",
                                "--out", str(out)]) == 0
    pretrained, trained = json.loads(out.read_text())["rows"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert 0.0 < pretrained["ssim"] < 1.0 and trained["ssim"] == metrics["ssim"]
