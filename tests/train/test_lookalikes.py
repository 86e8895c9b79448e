"""benchmarks/lookalikes.py: one model, its own held-out scenes re-rendered without scale jitter and degradation."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lookalikes(load_benchmark):
    return load_benchmark("lookalikes")


def test_the_default_row_reproduces_the_runs_own_held_out_figure(lookalikes, tiny_run, tmp_path, capsys):
    out = tmp_path / "l.json"
    assert lookalikes.main(["--run", str(tiny_run), "--out", str(out), "--weak", "1.01"]) == 0
    result = json.loads(out.read_text())
    saved = json.loads((tiny_run / "metrics.json").read_text())
    splits = json.loads((tiny_run / "splits.json").read_text())
    assert result["scenes"] == len(splits["test"])
    # the same scenes re-rendered from (config, seed, index), the same best.pt: the run's own macro mAP
    assert result["rows"]["default"]["macro_map"] == pytest.approx(saved["macro_map"], abs=1e-6)
    assert set(result["rows"]) == {"default", "no scale jitter", "clean", "clean, no jitter"}
    printed = capsys.readouterr().out
    assert "macro mAP" in printed and "confuser" in printed and "length AUC" in printed
    assert result["length_cue"], "every class is below --weak 1.01: at least one pair has scenes of only one of its two"
    for p in result["length_cue"]:
        assert p["confuser"] == result["rows"]["default"]["classes"][p["weak"]]["confuser"]
        assert 0.0 <= p["model_auc"] <= 1.0 and 0.0 <= p["length_auc"] <= 1.0 and 0 < p["with_weak"] < p["scenes"]
    for row in result["rows"].values():
        for name, c in row["classes"].items():
            assert c["confuser"] != name and (c["ap"] is None or 0.0 <= c["ap"] <= 1.0)


def test_each_row_changes_the_scenes_it_says(lookalikes):
    from dualpath.scenes import SceneConfig

    base = SceneConfig()
    images = {name: lookalikes.render(lookalikes.scene_config(base, changes), 0, [0, 1, 2])
              for name, changes in lookalikes.VARIANTS.items()}
    for name, (x, labels) in images.items():
        assert (labels == images["default"][1]).all()  # the same objects in every row
        assert (name == "default") == np.array_equal(x, images["default"][0])
    clean = lookalikes.scene_config(base, lookalikes.VARIANTS["clean, no jitter"])
    assert clean.scale_jitter == (1.0, 1.0) and clean.degrade.severity == 0.0 and base.degrade.severity == 1.0


def test_the_confuser_is_the_class_that_scores_highest_on_anothers_output(lookalikes):
    names = ("a", "b", "c")
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    probs = np.array([[0.9, 0.1, 0.1], [0.6, 0.9, 0.1], [0.2, 0.1, 0.9], [0.8, 0.1, 0.2]])
    report = lookalikes.class_report(probs, labels, names)
    assert report["a"]["confuser"] == "b" and report["a"]["confuser_score"] == pytest.approx(0.6)
    assert report["a"]["positive_score"] == pytest.approx(0.85) and report["a"]["ap"] == pytest.approx(1.0)


def test_a_folder_that_is_not_a_run_is_exit_2(lookalikes, tiny_run, tmp_path, capsys):
    assert lookalikes.main(["--run", str(tmp_path), "--out", str(tmp_path / "x.json")]) == 2
    assert "splits.json" in capsys.readouterr().err
    broken = tmp_path / "run"
    shutil.copytree(tiny_run, broken)
    (broken / "best.pt").write_bytes(b"not a checkpoint")
    assert lookalikes.main(["--run", str(broken), "--out", str(tmp_path / "x.json")]) == 2
    assert "best.pt" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_visible_length_is_the_extent_along_the_principal_axis(lookalikes):
    bar = np.zeros((64, 64), np.uint8)
    bar[30:33, 10:30] = 1
    assert lookalikes.visible_length(bar) == pytest.approx(20.0)
    assert lookalikes.visible_length(bar.T) == pytest.approx(20.0)
    diagonal = np.eye(64, dtype=np.uint8)[:40, :40]
    assert lookalikes.visible_length(diagonal) == pytest.approx(39 * np.sqrt(2) + 1)
    assert np.isnan(lookalikes.visible_length(np.zeros((64, 64), np.uint8)))


def test_the_length_cue_of_a_pair(lookalikes):
    from types import SimpleNamespace

    from dualpath.contract import CLASS_NAMES

    names = list(CLASS_NAMES)
    tea, dessert, ladle = names.index("teaspoon"), names.index("dessert spoon"), names.index("ladle")

    def scene(classes, lengths):
        masks = np.zeros((len(classes), 64, 64), np.uint8)
        for k, length in enumerate(lengths):
            masks[k, 5 + 6 * k, 2:2 + length] = 1
        return SimpleNamespace(classes=tuple(classes), masks=masks)

    scenes = [scene([tea], [30]), scene([dessert], [45]), scene([tea, ladle], [34, 60]), scene([dessert], [40]),
              scene([tea, dessert], [30, 45]),  # both: left out
              scene([ladle], [60])]  # neither: left out
    probs = np.zeros((len(scenes), len(names)))
    probs[:, tea] = [0.2, 0.9, 0.8, 0.1, 0.5, 0.5]  # the model gets one of its two pairs wrong
    pair = lookalikes.pair_report(scenes, probs, names, "teaspoon", "dessert spoon")
    assert pair["scenes"] == 4 and pair["with_weak"] == 2
    assert pair["length_auc"] == pytest.approx(1.0)  # teaspoons are the shorter class: shorter scores higher
    assert pair["model_auc"] == pytest.approx(0.5)
    assert (pair["weak_length_px"], pair["confuser_length_px"]) == (32.0, 42.5)
    reverse = lookalikes.pair_report(scenes, probs, names, "dessert spoon", "teaspoon")
    assert reverse["length_auc"] == pytest.approx(1.0)  # the longer class: longer scores higher
    assert lookalikes.pair_report(scenes[:1], probs, names, "teaspoon", "dessert spoon") is None

