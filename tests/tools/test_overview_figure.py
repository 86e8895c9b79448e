"""tools/overview_figure.py: the README's picture from any exported artifact, without torch."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dualpath import contract

pytest.importorskip("onnxruntime")
pytest.importorskip("matplotlib")


def write_tiny_model(path):
    """The runtime tests' hand-built model with the deployed interface (tests/runtime/test_backends.py)."""
    spec = importlib.util.spec_from_file_location("_backend_tests", Path(__file__).parents[1] / "runtime/test_backends.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_model(path)


def test_figure_from_a_model_and_captions_mark_wrong_labels(tmp_path):
    from tools import overview_figure

    model = write_tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "overview.png"
    assert overview_figure.main(["--model", str(model), "--out", str(out), "--n", "3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    truth, chosen = np.zeros(20, np.uint8), np.zeros(20, np.uint8)
    truth[[0, 1]], chosen[[1, 2]] = 1, 1
    names = [contract.CLASS_NAMES[i].replace("_", " ") for i in (0, 1, 2)]
    assert overview_figure.caption(truth, chosen) == f"+ {names[1]}\nx {names[2]}\n- {names[0]}"


def test_a_missing_model_is_one_line_and_exit_2(tmp_path, capsys):
    from tools import overview_figure

    assert overview_figure.main(["--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "o.png").exists()
