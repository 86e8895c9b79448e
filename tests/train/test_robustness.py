"""train/robustness.py: compare's evaluation at every severity, its paired verdicts and its cache."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from train import robustness
from train.cli import main
from train.compare import ROWS
from train.splits import load_splits


def test_the_verdict_on_hand_made_numbers():
    # a clear win: +0.02 on every fold, the differences barely vary
    win = robustness.paired([0.82, 0.83, 0.81], [0.80, 0.81, 0.79 + 0.001])
    assert win["verdict"] == "better" and win["mean"] == pytest.approx(0.019667, abs=1e-5) and win["t"] > 10
    # a win inside the noise: the mean is ahead, but the folds disagree (+0.03, -0.02, +0.01)
    noisy = robustness.paired([0.83, 0.78, 0.81], [0.80, 0.80, 0.80])
    assert noisy["mean"] > 0 and noisy["verdict"] == "within the noise"
    assert noisy["se"] == pytest.approx(np.std([0.03, -0.02, 0.01], ddof=1) / np.sqrt(3))
    assert noisy["mean"] < 2 * noisy["se"]
    # a loss: behind on every fold
    loss = robustness.paired([0.80, 0.81, 0.79], [0.82, 0.825, 0.80])
    assert loss["verdict"] == "worse" and loss["mean"] < 0
    # identical differences on every fold: no spread, still a verdict; one fold: none
    assert robustness.paired([0.9, 0.9], [0.8, 0.8])["verdict"] == "better"
    assert robustness.paired([0.9], [0.8])["verdict"] == "no noise estimate"
    with pytest.raises(ValueError, match="same folds"):
        robustness.paired([0.9, 0.8], [0.8])


def test_summary_and_sentences_name_the_severities_where_a_row_wins():
    def folds(*values):
        return [{"macro_map": v, "accuracy": v + 0.1, "ssim": None} for v in values]

    per_row = {
        "densenet_bce": {"0": folds(0.90, 0.91, 0.89), "3": folds(0.50, 0.52, 0.48)},
        "dualpath_bce": {"0": folds(0.90, 0.91, 0.89), "3": folds(0.55, 0.57, 0.53)},
        "dualpath_asl": {"0": folds(0.88, 0.89, 0.87), "3": folds(0.56, 0.50, 0.52)},
    }
    result = robustness.summarize(per_row, {"0": None, "3": None}, n_test=12)
    assert result["rows"]["dualpath_bce"]["3"]["macro_map"]["mean"] == pytest.approx(0.55)
    assert result["rows"]["dualpath_bce"]["3"]["ssim"]["mean"] is None
    by = {(v["a"], v["b"], v["metric"]): v["by_severity"] for v in result["verdicts"]}
    assert by["dualpath_bce", "densenet_bce", "macro_map"]["3"]["verdict"] == "better"
    assert by["dualpath_asl", "densenet_bce", "macro_map"]["0"]["verdict"] == "worse"
    assert by["dualpath_asl", "densenet_bce", "macro_map"]["3"]["verdict"] == "within the noise"
    text = "\n".join(robustness.sentences(result))
    assert "Proposed + BCE vs DenseNet alone, macro mAP: better at severity 3 (+0.0500); within the noise at 0." in text
    assert "Proposed + ASL vs DenseNet alone, macro mAP: better at no severity; worse at 0 (-0.0200)" in text


def test_the_scenes_at_each_severity_are_the_data_sets_own(scenes):
    sets = robustness.severity_sets(scenes, (0.0, 1.0, 3.0))
    assert list(sets) == ["0", "1", "3"]
    assert sets["1"] is scenes  # the data set is at severity 1: used as it is
    for s in ("0", "3"):
        ds = sets[s]
        assert ds.seed == scenes.seed and ds.config.degrade.severity == float(s)
        np.testing.assert_array_equal(ds.labels, scenes.labels)  # the same scenes: same objects ...
        np.testing.assert_array_equal(ds.clean, scenes.clean)
        assert not np.array_equal(ds.noisy, scenes.noisy)  # ... only the degradation differs
    np.testing.assert_array_equal(sets["0"].noisy, scenes.clean)  # severity 0: no degradation at all
    assert robustness.severity_sets(scenes, (3.0,))["3"].reused  # generated once, reused afterwards


def test_parse_severities():
    assert robustness.parse_severities("0,1,2,3") == (0.0, 1.0, 2.0, 3.0)
    for bad, message in (("", "at least one"), ("a,1", "comma-separated"), ("0,5", r"\[0, 4\]"), ("1,1", "repeats")):
        with pytest.raises(ValueError, match=message):
            robustness.parse_severities(bad)


def test_fold_model_results_are_cached_per_checkpoint_and_scenes(scenes, tiny_run, tmp_path):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    sets = robustness.severity_sets(scenes, (0.0, 1.0))
    indices = load_splits(run / "splits.json").test
    calls = []

    def counting(checkpoint, ds, idx):
        calls.append(ds.config.degrade.severity)
        return robustness.Evaluator(batch_size=64)(checkpoint, ds, idx)

    fold = robustness.fold_dirs(run)[0]
    first = robustness.evaluate_fold_model(fold, sets, np.asarray(indices), counting)
    assert sorted(calls) == [0.0, 1.0]
    # severity 1 is the run's own held-out test: the same metrics as training's evaluation
    saved = json.loads((run / "metrics.json").read_text())["folds"][0]["test"]
    assert first["1"]["macro_map"] == pytest.approx(saved["macro_map"], abs=1e-6)
    assert first["1"]["ssim"] == pytest.approx(saved["ssim"], abs=1e-5)
    assert first["0"]["ssim"] != first["1"]["ssim"]  # other inputs (a tiny model need not do better on clean ones)
    again = robustness.evaluate_fold_model(fold, sets, np.asarray(indices), counting)
    assert again == first and len(calls) == 2  # cached
    (fold / "best.pt").write_bytes((fold / "best.pt").read_bytes() + b"")  # same bytes: still cached
    robustness.evaluate_fold_model(fold, sets, np.asarray(indices), counting)
    assert len(calls) == 2
    robustness.evaluate_fold_model(fold, sets, np.asarray(indices[:5]), counting)  # other scenes: evaluated again
    assert len(calls) == 4


def test_compare_refuses_bad_severities_before_training(cli_args, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["compare", *cli_args(tmp_path / "c", "--severities", "0,9")])
    assert err.value.code == 2 and "--severities" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.slow  # four trainings of two folds
def test_compare_with_severities_writes_the_robustness_table_json_and_plot(cli_args, tmp_path):
    out = tmp_path / "compare"
    argv = ["compare", *cli_args(out, "--epochs", "1", "--folds", "2", "--severities", "0,1,3")]
    assert main(argv) == 0
    payload = json.loads((out / "comparison.json").read_text())
    assert set(payload) == {row.name for row in ROWS} | {"robustness"}
    robust = payload["robustness"]
    assert robust["severities"] == ["0", "1", "3"]
    for row in ROWS:
        for s in ("0", "1", "3"):
            cell = robust["rows"][row.name][s]
            assert len(cell["macro_map"]["folds"]) == 2 and 0 <= cell["macro_map"]["mean"] <= 1
            assert (cell["ssim"]["mean"] is None) == (row.name == "densenet_bce")
        # severity 1 is the held-out test of training's own evaluation
        assert robust["rows"][row.name]["1"]["macro_map"]["mean"] == pytest.approx(
            payload[row.name]["ours"]["macro_map"], abs=1e-6)
    assert len(robust["verdicts"]) == 6  # 3 comparisons x (macro mAP, accuracy)
    text = (out / "comparison.md").read_text()
    assert "## Robustness" in text and "| Proposed | ASL | macro mAP |" in text and "0.8925 |" in text
    assert "Proposed + ASL vs DenseNet alone, macro mAP:" in text
    assert (out / "robustness.png").stat().st_size > 20_000

    # --resume: nothing trained, nothing evaluated again (the fold caches are not rewritten)
    caches = {p: p.stat().st_mtime_ns for p in out.glob("*/fold*/robustness.json")}
    assert len(caches) == 8
    assert main([*argv, "--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/fold*/robustness.json")} == caches
    assert json.loads((out / "comparison.json").read_text())["robustness"] == robust


def test_a_row_at_chance_is_a_note_off_the_plots_scale(tmp_path):
    def cells(*maps):
        return {str(s): {"macro_map": {"mean": m, "std": 0.001}, "accuracy": {"mean": 0.9, "std": 0.001},
                         "ssim": {"mean": None, "std": None}} for s, m in enumerate(maps)}

    result = {"rows": {"cae_bce": cells(0.13, 0.15), "densenet_bce": cells(0.86, 0.62),
                       "dualpath_asl": cells(0.85, 0.64)}}
    assert robustness._off_scale(result, ROWS) == ["Standard CAE + BCE"]
    result["rows"]["cae_bce"] = cells(0.40, 0.35)  # not under half of every other row's worst: drawn
    assert robustness._off_scale(result, ROWS) == []
    verdicts = robustness.summarize({k: {s: [{"macro_map": c["macro_map"]["mean"], "accuracy": 0.9}] * 2
                                         for s, c in v.items()} for k, v in result["rows"].items()},
                                    {"0": None, "1": None}, n_test=5)
    robustness.figure(verdicts, ROWS, tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 10_000
