"""Seed disjointness for every seed, not only the defaults (issue 19, item 10): a model trained on scenes that the
export would calibrate, tune or measure on, or that runtime.drift would measure on, is refused with exit 2, one line.
And the OpenVINO FP16 IR ships with the inference precision that holds its budget, which the runtime honours
(item 12)."""
from __future__ import annotations

import copy
import json

import pytest

from dualpath.exitcodes import BAD_INPUT
from dualpath.seeds import PRETRAIN_SEEDS, SceneRange, check_disjoint, training_ranges
from fault_checks import error_line, temporaries, train_argv

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from calibration.sets import ACCURACY_CONTROL_SEED, CALIBRATION_SEED  # noqa: E402
from runtime.drift.sets import DRIFT_SEED  # noqa: E402


def test_the_seeds_are_the_ones_the_sets_use():
    from train.pretrain import PRETRAIN_SEED_END, PRETRAIN_SEED_START

    assert CALIBRATION_SEED == 1_000_003 and ACCURACY_CONTROL_SEED == 1_000_004 and DRIFT_SEED == 2_000_003
    assert PRETRAIN_SEEDS == (PRETRAIN_SEED_START, PRETRAIN_SEED_END)


@pytest.fixture(scope="module")
def trained_on_calibration_seed(tmp_path_factory):
    """The issue's case: a data set generated with --seed 1000003 (the calibration seed), trained on (tiny)."""
    from dualpath.scenes import SceneConfig, generate_dataset
    from train.cli import main

    root = tmp_path_factory.mktemp("seed-clash")
    ds = generate_dataset(SceneConfig(), seed=CALIBRATION_SEED, n=60, out=root / "scenes", workers=1, progress=False)
    assert main(train_argv(ds.path, root / "run")) == 0
    return root / "run" / "best.pt"


def _export(ckpt, out, data, *extra):
    from export.__main__ import main

    return main(["--checkpoint", str(ckpt), "--out", str(out), "--threads", "1", "--data-root", str(data),
                 *map(str, extra)])


def test_a_model_trained_on_the_calibration_seed_is_refused_int8(trained_on_calibration_seed, tmp_path, capsys):
    saved = torch.load(trained_on_calibration_seed, weights_only=True)["train_config"]
    assert (saved["data_seed"], saved["n_scenes"]) == (CALIBRATION_SEED, 60)  # the checkpoint knows its data set
    out = tmp_path / "export"
    assert _export(trained_on_calibration_seed, out, tmp_path / "data", "--int8", "--backends", "onnx") == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert str(CALIBRATION_SEED) in line and "calibration" in line and str(trained_on_calibration_seed) in line
    assert not (out / "manifest.json").exists() and not list(out.glob("*.onnx")) and not temporaries(tmp_path)


@pytest.fixture(scope="module")
def base_checkpoint(trained):
    return torch.load(trained / "best.pt", weights_only=True)


@pytest.mark.parametrize("train_config, flags, clash", [
    ({"data_seed": DRIFT_SEED}, ("--fp16", "--backends", "onnx"), "parity scenes"),  # the parity scenes: drift's seed
    ({"extra_seed": CALIBRATION_SEED, "extra_scenes": 100}, ("--int8", "--backends", "onnx"), "extra training"),
    ({"data_seed": 1_000_007}, ("--int8", "--backends", "onnx", "--calib-seed", 1_000_007), "calibration"),
    ({"data_seed": ACCURACY_CONTROL_SEED}, ("--int8", "--backends", "onnx", "--accuracy-control"), "accuracy-control"),
    ({"pretrained": "weights/densenet_small/backbone.pth"},
     ("--int8", "--backends", "onnx", "--calib-seed", PRETRAIN_SEEDS[0] + 5), "pretraining"),
])
def test_calibration_tuning_and_drift_scenes_off_the_training_scenes(base_checkpoint, tmp_path, capsys, train_config,
                                                                     flags, clash):
    ckpt = copy.deepcopy(base_checkpoint)
    ckpt["train_config"].update(train_config)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    out = tmp_path / "export"
    assert _export(path, out, tmp_path / "data", *flags) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert clash in line and str(path) in line
    assert not (out / "manifest.json").exists() and not list(out.glob("*.onnx"))


@pytest.mark.parametrize("a, b, shared", [
    (SceneRange(7, 0, 60), SceneRange(7, 0, 300), True),  # one seed, every data set starts at index 0
    (SceneRange(7, 0, 60), SceneRange(8, 0, 300), False),
    (SceneRange(7, 0, 60), SceneRange(7, 60, 120), False),  # same seed, other indices
    (SceneRange(7, 0, 0), SceneRange(7, 0, 300), False),  # an empty set shares nothing
    (SceneRange(10, 0, 5, seed_stop=20), SceneRange(19, 3, 4), True),  # a seed stream
    (SceneRange(10, 0, 5, seed_stop=20), SceneRange(20, 0, 4), False),
])
def test_scene_ranges_overlap_on_a_shared_seed_and_index(a, b, shared):
    assert a.overlaps(b) is shared and b.overlaps(a) is shared


def test_a_training_config_names_its_data_set_extra_scenes_and_pretraining():
    ranges = training_ranges({"data_seed": 5, "n_scenes": 6000, "extra_seed": 9, "extra_scenes": 30000,
                              "pretrained": "weights/densenet_small/backbone.pth"})
    assert [(r.seed, r.stop) for r in ranges][:2] == [(5, 6000), (9, 30000)] and ranges[2].seeds == PRETRAIN_SEEDS
    assert training_ranges({"data_seed": 5, "n_scenes": 10, "pretrained": "imagenet"}) == [SceneRange(5, 0, 10, role=
                                                                                            "training data set")]
    with pytest.raises(ValueError, match="seed 5"):
        check_disjoint(ranges, [SceneRange(5, 0, 1, role="drift")], "x.pt", "choose another")


def test_the_exported_model_names_its_training_scenes(onnx_model):
    from runtime.backends import load_backend

    with load_backend(onnx_model, threads=1) as be:
        scenes = be.metadata.extra["training_scenes"]
    assert {"seed": 0, "start": 0, "stop": 60, "role": "training data set"} in scenes


@pytest.mark.parametrize("flags", [("--seed", "0"), ("--seed", "0", "--n", "20"), ("--seed", "0", "--severities", "2")])
def test_the_drift_tool_refuses_drift_scenes_the_model_trained_on(onnx_model, tmp_path, capsys, flags):
    from runtime.drift.__main__ import main

    out = tmp_path / "report"
    assert main(["--reference", str(onnx_model), "--candidate", str(onnx_model), "--out", str(out),
                 "--data-root", str(tmp_path / "data"), "--threads", "1", *flags]) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "seed 0" in line and "training data set" in line
    assert not out.exists() and not (tmp_path / "data").exists()


def test_the_drift_tool_measures_on_other_seeds(onnx_model, tmp_path):
    from runtime.drift.__main__ import main

    out = tmp_path / "report"
    assert main(["--reference", str(onnx_model), "--candidate", str(onnx_model), "--out", str(out), "--n", "20",
                 "--data-root", str(tmp_path / "data"), "--threads", "1", "--no-plots"]) == 0
    assert json.loads((out / "drift.json").read_text())["data"]["seed"] == DRIFT_SEED


# ------------------------------------------------------------------------------------------------ item 12


@pytest.mark.parametrize("asked, device, recorded, expected", [
    ("auto", "CPU", {"CPU": "f32", "GPU": "f16"}, "f32"),
    ("auto", "GPU", {"CPU": "f32", "GPU": "f16"}, "f16"),
    ("bf16", "CPU", {"CPU": "f32"}, "bf16"),  # asked for explicitly: what was asked
    ("auto", "CPU", {"CPU": "fp8"}, None),  # nothing it knows: the device's default
    ("auto", "AUTO", {"CPU": "f32"}, None),
])
def test_the_recorded_inference_precision_is_honoured(asked, device, recorded, expected):
    pytest.importorskip("openvino")
    from runtime.backends.ov import inference_precision

    assert inference_precision(asked, "fp16", device, recorded) == expected


def test_the_fp16_ir_names_its_inference_precision_and_runs_in_it(onnx_model, tmp_path):
    pytest.importorskip("openvino")
    from export import openvino_export as ovx
    from runtime.backends import load_backend
    from runtime.backends.ov import onnx_props

    xml = tmp_path / "model_fp16.xml"
    props = onnx_props(onnx_model) | {"precision": json.dumps("fp16")}
    ovx.save_ir(ovx.convert(onnx_model), xml, props, compress_to_fp16=True)
    assert ovx.recorded_inference_precision(xml) == ovx.FP16_INFERENCE_PRECISION
    with load_backend(xml, threads=1) as be:
        assert be.inference_precision == "f32"  # not bf16, whatever the CPU offers
    manifest = {"recipes": {"model_fp16.xml": {}}}
    ovx.record_inference_precisions(tmp_path, manifest)
    assert manifest["recipes"]["model_fp16.xml"]["inference_precision"] == {"CPU": "f32", "GPU": "f16"}
