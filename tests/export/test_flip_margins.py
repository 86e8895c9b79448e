"""benchmarks.flip_margins: the reference's decision margins on the scenes a candidate flips, right->wrong against
wrong->right, the FP32 noise floor, and the command's answers to a folder that is not an export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import flip_margins as fm
from dualpath import contract


def test_margin_is_the_gap_between_the_t_th_and_the_next_probability():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 1]])
    probs = np.array([[0.60, 0.59, 0.10], [0.20, 0.90, 0.50], [0.3, 0.2, 0.1], [0.9, 0.8, 0.7]])
    m = fm.margins(labels, probs)
    assert m[:2] == pytest.approx([0.01, 0.30])
    assert np.isnan(m[2]) and np.isnan(m[3])  # T = 0 and T = every class: no decision to measure


def test_a_near_tie_flip_and_a_wrong_to_right_change():
    labels = np.array([[1, 0, 0],    # a near-tie the candidate tips the wrong way: right -> wrong
                       [0, 1, 0],    # the reference wrong, the candidate right: wrong -> right
                       [1, 1, 0],    # far from a tie, unchanged
                       [0, 0, 1]])   # unchanged and wrong in both
    ref = np.array([[0.50, 0.49, 0.10], [0.60, 0.50, 0.10], [0.90, 0.80, 0.10], [0.90, 0.10, 0.20]])
    cand = np.array([[0.49, 0.50, 0.10], [0.50, 0.60, 0.10], [0.85, 0.82, 0.12], [0.90, 0.10, 0.20]])
    s = fm.flip_stats(labels, ref, cand)
    assert s["n"] == 4 and s["flips"] == 2 and s["label_flip_rate"] == pytest.approx(0.5)
    assert s["right_to_wrong"] == 1 and s["wrong_to_right"] == 1
    assert s["flip_margin"]["median"] == pytest.approx(0.055)  # margins 0.01 and 0.10 of the flipped scenes
    assert s["flip_margin"]["max"] == pytest.approx(0.10)
    assert s["flips_margin_below_0.02"] == 1 and s["flips_margin_below_0.01"] == 0
    assert s["accuracy_reference"] == pytest.approx(0.5) and s["accuracy_candidate"] == pytest.approx(0.5)
    assert s["mean_abs_delta_p"] == pytest.approx(np.abs(ref - cand).mean())


def test_the_flip_rate_is_the_gates():
    from runtime.drift.compare import output_drift

    rng = np.random.default_rng(3)
    labels = (rng.random((200, 6)) < 0.3).astype(np.uint8)
    ref = rng.random((200, 6)).astype(np.float32)
    cand = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1).astype(np.float32)
    recon = np.zeros((200, 3, 2, 2), np.float32)
    gate = output_drift(labels, {contract.OUTPUT_PROBS: ref, contract.OUTPUT_RECON: recon},
                        {contract.OUTPUT_PROBS: cand, contract.OUTPUT_RECON: recon})
    s = fm.flip_stats(labels, ref, cand)
    assert s["label_flip_rate"] == gate["label_flip_rate"] and 0 < s["flips"] < 200


def test_no_flips_leave_the_quantiles_empty():
    labels = np.array([[1, 0], [0, 1]])
    probs = np.array([[0.9, 0.1], [0.2, 0.7]])
    s = fm.flip_stats(labels, probs, probs)
    assert s["flips"] == 0 and s["flip_margin"] == {"median": None, "p90": None, "max": None}
    assert s["right_to_wrong"] == s["wrong_to_right"] == 0 and s["mean_abs_delta_p"] == 0


def test_jitter_moves_each_value_by_at_most_k_and_clips():
    images = np.array([0, 1, 128, 254, 255] * 200, np.uint8).reshape(10, 10, 10)
    for k in (0, 1, 2):
        out = fm.jitter(images, k)
        assert out.dtype == np.uint8 and out.shape == images.shape
        assert np.abs(out.astype(int) - images).max() <= k
    assert np.array_equal(fm.jitter(images, 0), images)
    assert np.array_equal(fm.jitter(images, 2), fm.jitter(images, 2))  # default_rng(0): the same draw every time
    assert not np.array_equal(fm.jitter(images, 2), images)


class FakeBackend:
    """Probabilities that depend on every pixel (a candidate: `shift` added to its logits)."""

    def __init__(self, shift: float = 0.0, classes: int = 4):
        self.shift, self.classes = shift, classes

    def infer(self, feed):
        x = feed[contract.INPUT_NAME]
        logits = np.stack([x[:, c % 3, c:, :].mean(axis=(1, 2)) * 40 for c in range(self.classes)], axis=1)
        logits[:, 0] += self.shift
        return {contract.OUTPUT_PROBS: (1 / (1 + np.exp(-logits))).astype(np.float32), contract.OUTPUT_RECON: x}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def fake_scenes(n: int, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, contract.IMAGE_SIZE, contract.IMAGE_SIZE, 3), dtype=np.uint8)
    labels = np.zeros((n, classes), np.uint8)
    labels[np.arange(n), rng.integers(0, classes, n)] = 1
    return images, labels


def test_noise_floor_of_zero_grey_levels_flips_nothing():
    from runtime.drift.compare import run_backend

    images, labels = fake_scenes(40)
    backend = FakeBackend()
    clean = run_backend(backend, images)[contract.OUTPUT_PROBS]
    s = fm.noise_floor(backend, images, labels, clean, 0)
    assert s["k"] == 0 and s["flips"] == 0 and s["label_flip_rate"] == 0 and s["mean_abs_delta_p"] == 0
    moved = fm.noise_floor(backend, images, labels, clean, 2)
    assert moved["mean_abs_delta_p"] > 0 and 0 <= moved["label_flip_rate"] <= 1


@pytest.mark.parametrize("argv", [[], ["--n", "0"]])
def test_a_folder_without_manifest_or_a_bad_n_exits_2_with_one_line(tmp_path, capsys, argv):
    out = tmp_path / "flips.json"
    code = fm.main(["--export", str(tmp_path), "--out", str(out), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert ("manifest.json" in err[0]) if not argv else ("--n" in err[0])
    assert not out.exists()


def test_a_manifest_without_drift_reports_exits_2(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "onnx": {}}))
    out = tmp_path / "flips.json"
    assert fm.main(["--export", str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no drift reports" in err[0] and not out.exists()


class Scenes:
    def __init__(self, n):
        self.noisy, self.labels = fake_scenes(n)
        self.path = "fake"


def test_main_writes_a_row_per_candidate_and_the_noise_floor(tmp_path, monkeypatch, capsys):
    import runtime.backends
    import runtime.drift.sets

    shifts = {"model_fp32.onnx": 0.0, "model_int8_u8.onnx": 0.3, "model_fp16.onnx": 0.01}
    monkeypatch.setattr(runtime.backends, "load_backend", lambda path, **kw: FakeBackend(shifts[path.name]))
    monkeypatch.setattr(runtime.drift.sets, "drift_dataset", lambda root, n, *a: Scenes(n))
    (tmp_path / "manifest.json").write_text(json.dumps({"drift": {
        "model_int8_u8.onnx": {"reference": "model_fp32.onnx"}, "model_fp16.onnx": {"reference": "model_fp32.onnx"}}}))
    out = tmp_path / "results" / "flips.json"
    assert fm.main(["--export", str(tmp_path), "--n", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "-core" in printed[0]  # the machine's headline
    result = json.loads(out.read_text())
    assert set(result["candidates"]) == set(shifts) - {"model_fp32.onnx"} and result["scenes"] == 64
    assert result["machine"]["cores"] >= 1
    for s in result["candidates"].values():
        assert 0 <= s["label_flip_rate"] <= 1 and s["reference"] == "model_fp32.onnx"
    floor = result["references"]["model_fp32.onnx"]["noise_floor"]
    assert [f["k"] for f in floor] == [1, 2] and all(0 <= f["label_flip_rate"] <= 1 for f in floor)
    assert any(line.startswith("model_int8_u8.onnx") for line in printed)


def test_a_real_tiny_export_end_to_end(tmp_path_factory, tmp_path):
    """The tests' tiny checkpoint as FP32 and INT8 QDQ ONNX (tiny_qdq, built once per session), 16 real drift
    scenes."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from export.onnx_fp32 import embed_metadata
    from runtime.backends import ModelMetadata
    from tiny_qdq import tiny_qdq

    built = tiny_qdq(tmp_path_factory.mktemp("tiny_qdq"))
    export = tmp_path / "export"
    export.mkdir()
    for key in ("fp32", "s8", "u8"):  # copies with the metadata the export embeds (the shared files stay as built)
        proto = onnx.load(str(built[key]))
        embed_metadata(proto, ModelMetadata.from_contract(precision="fp32" if key == "fp32" else f"int8-qdq-{key}"))
        onnx.save(proto, str(export / built[key].name))
    (export / "manifest.json").write_text(json.dumps({"drift": {
        built[k].name: {"reference": built["fp32"].name} for k in ("s8", "u8")}}))
    out = tmp_path / "flips.json"
    assert fm.main(["--export", str(export), "--n", "16", "--data-root", str(tmp_path / "data"),
                    "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["candidates"]) == {"model_int8_s8.onnx", "model_int8_u8.onnx"} and result["scenes"] == 16
    for s in result["candidates"].values():
        assert 0 <= s["label_flip_rate"] <= 1 and s["right_to_wrong"] + s["wrong_to_right"] <= s["flips"]
