"""Calibration sets: their own seed stream (no scene shared with training, test, drift or accuracy-control sets),
cached with a manifest, batches as the quantizers want them."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from calibration import (
    ACCURACY_CONTROL_SEED,
    CALIBRATION_SEED,
    CalibrationBatches,
    CalibrationConfig,
    build_calibration_set,
    nncf_dataset,
    ort_reader,
)
from calibration.__main__ import main
from dualpath import contract
from dualpath.scenes import SceneConfig
from dualpath.scenes.dataset import render_range
from runtime.drift.sets import DRIFT_SEED

N = 60  # one balanced block of scenes per seed


@pytest.fixture(scope="module")
def calib_set(tmp_path_factory):
    return build_calibration_set(CalibrationConfig(n=N), tmp_path_factory.mktemp("calib") / "set")


def _hashes(noisy: np.ndarray) -> set[str]:
    return {hashlib.sha256(img.tobytes()).hexdigest() for img in noisy}


def test_no_scene_is_shared_with_training_drift_or_accuracy_control(calib_set):
    train_seed = 0  # train.config.TrainConfig.data_seed's default; train/val/test are index splits of it
    others = {name: render_range(SceneConfig(), seed, 0, N)["noisy"]
              for name, seed in (("train", train_seed), ("drift", DRIFT_SEED), ("accuracy-control", ACCURACY_CONTROL_SEED))}
    mine = _hashes(calib_set.noisy)
    assert len(mine) == N
    for name, noisy in others.items():
        assert not mine & _hashes(noisy), f"calibration shares scenes with the {name} set"
    assert len({CALIBRATION_SEED, ACCURACY_CONTROL_SEED, DRIFT_SEED, train_seed}) == 4


def test_training_seeds_are_refused():
    with pytest.raises(ValueError, match="training seed range"):
        CalibrationConfig(seed=0)
    with pytest.raises(ValueError, match="n must be"):
        CalibrationConfig(n=0)


def test_cached_with_manifest_and_reused(calib_set):
    assert calib_set.seed == CALIBRATION_SEED and len(calib_set) == N
    assert calib_set.manifest["files"]["noisy"]["sha256"]
    again = build_calibration_set(CalibrationConfig(n=N), calib_set.path)
    assert again.reused and np.array_equal(again.noisy, calib_set.noisy)


def test_batches_are_preprocessed_as_the_contract_says(calib_set):
    batches = CalibrationBatches.from_dataset(calib_set, batch_size=16)
    items = list(batches)
    assert len(items) == len(batches) == 4
    assert [b["image"].shape[0] for b in items] == [16, 16, 16, 12]
    assert np.array_equal(items[0]["image"], contract.preprocess(calib_set.noisy[:16]))
    assert list(batches)[0]["image"].dtype == np.float32  # re-iterable


def test_ort_reader_reads_every_batch_and_rewinds(calib_set):
    pytest.importorskip("onnxruntime")
    reader = ort_reader(CalibrationBatches.from_dataset(calib_set, batch_size=32))
    first = [reader.get_next() for _ in range(3)]
    assert first[-1] is None and first[0]["image"].shape == (32, 3, 64, 64)
    reader.rewind()
    assert reader.get_next() is not None


def test_nncf_dataset_splits_into_samples(calib_set):
    pytest.importorskip("nncf")
    ds = nncf_dataset(CalibrationBatches.from_dataset(calib_set, batch_size=16))
    items = list(ds.get_inference_data())
    assert len(items) == N and items[0]["image"].shape == (1, 3, 64, 64)


def test_cli_writes_set_and_preview(tmp_path, capsys):
    assert main(["--n", "20", "--out", str(tmp_path / "c"), "--preview", "4"]) == 0
    assert (tmp_path / "c" / "manifest.json").is_file() and (tmp_path / "c" / "preview.png").is_file()
    assert main(["--n", "20", "--seed", "5", "--out", str(tmp_path / "d")]) == 2
    assert "training seed range" in capsys.readouterr().err
