"""The drift gate cannot be switched off or fooled: budgets must be finite non-negative numbers (exit 2, one line),
and reference and candidate must agree on labels, input size and normalisation (exit 2 naming the difference)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from dualpath import contract  # noqa: E402
from dualpath.exitcodes import BAD_INPUT, VERDICT  # noqa: E402
from runtime.backends.metadata import ModelMetadata  # noqa: E402
from runtime.drift.__main__ import main  # noqa: E402
from runtime.drift.budgets import Budget, load_budgets, parse_budget  # noqa: E402
from test_backends import write_tiny_model  # noqa: E402  (same folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate-models")
    reversed_names = ModelMetadata(tuple(reversed(contract.CLASS_NAMES)), contract.IMAGE_SIZE, contract.MEAN,
                                   contract.STD, extra={"precision": "fp32"})
    other_std = ModelMetadata(contract.CLASS_NAMES, contract.IMAGE_SIZE, contract.MEAN, (0.5, 0.5, 0.5))
    return {
        "ref": write_tiny_model(d / "ref.onnx", seed=0),
        "worse": write_tiny_model(d / "worse.onnx", seed=5, scale=-1.0),
        "relabelled": write_tiny_model(d / "relabelled.onnx", seed=0, metadata=reversed_names),
        "other_std": write_tiny_model(d / "other_std.onnx", seed=0, metadata=other_std),
        "data": tmp_path_factory.mktemp("gate-data"),
    }


def _run(models, out, candidate, *extra):
    return main(["--reference", str(models["ref"]), "--candidate", str(models[candidate]), "--out", str(out),
                 "--n", "24", "--data-root", str(models["data"]), "--no-plots", *extra])


@pytest.mark.parametrize("text", ["macro_map=nan", "macro_map=NaN%", "ssim=inf", "accuracy=1e999", "ssim=-0.1"])
def test_non_finite_or_negative_budget_flags_are_refused(text):
    with pytest.raises(ValueError, match="finite number >= 0"):
        parse_budget(text)


@pytest.mark.parametrize("limits", [{"abs": float("nan")}, {"abs": "lots"}, {"rel": True}, {"abs": None, "rel": [1]},
                                    {"abs": float("inf")}])
def test_budget_values_of_the_wrong_type_or_not_finite_are_refused(limits):
    with pytest.raises(ValueError, match="ssim"):
        Budget("ssim", **limits)


def test_a_nan_budget_cannot_switch_the_gate_off(models, tmp_path, capsys):
    """The worse model fails an ssim budget; a NaN budget for it must not turn that into a pass."""
    assert _run(models, tmp_path / "a", "worse", "--budget", "ssim=0.001") == VERDICT
    capsys.readouterr()
    assert _run(models, tmp_path / "b", "worse", "--budget", "ssim=nan") == BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: budget ssim.abs") and "Traceback" not in err[0]
    assert not (tmp_path / "b" / "drift.json").exists()


@pytest.mark.parametrize("content", ['{"macro_map": {"abs": NaN}}', '{"accuracy": {"abs": "lots"}}',
                                     '{"accuracy": {"abs": -1}}'])
def test_bad_budgets_file_exits_2_with_one_line(models, tmp_path, capsys, content):
    f = tmp_path / "budgets.json"
    f.write_text(content)
    assert _run(models, tmp_path / "o", "worse", "--budgets-file", str(f)) == BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: budget "), err
    with pytest.raises(ValueError):
        load_budgets(f)


def test_relabelled_candidate_is_refused_naming_the_difference(models, tmp_path, capsys):
    """Same weights, class_names reversed: every delta would be 0, and the runtime would name the wrong objects."""
    assert _run(models, tmp_path, "relabelled") == BAD_INPUT
    err = capsys.readouterr().err
    assert "disagree on class_names" in err and contract.CLASS_NAMES[0] in err and err.count("\n") == 1
    assert not (tmp_path / "drift.json").exists()


def test_other_normalisation_is_refused(models, tmp_path, capsys):
    assert _run(models, tmp_path, "other_std") == BAD_INPUT
    assert "disagree on std" in capsys.readouterr().err


def test_budgets_written_to_the_report_are_the_validated_ones(models, tmp_path):
    assert _run(models, tmp_path, "worse", "--budget", "ssim=1", "--budget", "accuracy=1", "--budget", "macro_map=1",
                "--budget", "label_flip_rate=100%") == 0
    assert json.loads((tmp_path / "drift.json").read_text())["budgets"] == {
        "ssim": {"abs": 1.0}, "accuracy": {"abs": 1.0}, "macro_map": {"abs": 1.0}, "label_flip_rate": {"abs": 1.0}}
