"""python -m runtime --mode throughput and several --source, with real backends on the tiny model of
test_backends.py and a short lossless video: the same per-frame results as latency mode; the new flags' errors are
exit 2 in one line."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from dualpath.exitcodes import BAD_INPUT, OK
from runtime.__main__ import main
from runtime.demo_video import write_scene_video

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_backends import to_openvino_ir, write_tiny_model  # noqa: E402  (same folder)

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
N_FRAMES = 24


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    images = np.random.default_rng(4).integers(0, 256, (N_FRAMES, 64, 64, 3), dtype=np.uint8)
    onnx_path = write_tiny_model(folder / "tiny.onnx", scale=3.0)
    files = {"onnx": onnx_path, "video": write_scene_video(folder / "v.mkv", images, size=128)}
    if HAS_OPENVINO:
        files["xml"] = to_openvino_ir(onnx_path, folder / "tiny.xml")
    return files


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(model, video, jsonl, *extra):
    return main(["--model", str(model), "--source", str(video), "--headless", "--jsonl", str(jsonl), *extra])


@pytest.mark.parametrize("model, extra", [
    ("onnx", ["--requests", "3"]),
    ("xml", []),
    ("xml", ["--batch", "4", "--requests", "2"]),
])
def test_throughput_mode_gives_the_per_frame_results_of_latency_mode(files, tmp_path, model, extra):
    if model not in files:
        pytest.skip("openvino not installed")
    assert _run(files[model], files["video"], tmp_path / "lat.jsonl") == OK
    assert _run(files[model], files["video"], tmp_path / "thr.jsonl", "--mode", "throughput", *extra) == OK
    latency, throughput = _lines(tmp_path / "lat.jsonl"), _lines(tmp_path / "thr.jsonl")
    assert [line["frame"] for line in throughput] == list(range(N_FRAMES))
    assert [line["labels"] for line in throughput] == [line["labels"] for line in latency]
    np.testing.assert_allclose([line["probs"] for line in throughput], [line["probs"] for line in latency], atol=1e-5)


def test_two_sources_on_the_command_line_each_write_their_own_jsonl(files, tmp_path, capsys):
    code = main(["--model", str(files["onnx"]), "--source", str(files["video"]), "--source", str(files["video"]),
                 "--headless", "--mode", "throughput", "--jsonl", str(tmp_path / "o.jsonl"), "--max-frames", "10",
                 "--benchmark", "--warmup", "2"])
    assert code == OK
    for i in (0, 1):
        lines = _lines(tmp_path / f"o.{i}.jsonl")
        assert [line["frame"] for line in lines] == list(range(10)) and {line["source"] for line in lines} == {i}
    out = capsys.readouterr().out
    assert "summary: 20 frames" in out and "source 0 " in out and "source 1 " in out and "requests in flight" in out


@pytest.mark.parametrize("model, extra, message", [
    ("onnx", ["--provider", "NoSuchExecutionProvider"], "no execution provider 'NoSuchExecutionProvider'; it has "),
    ("onnx", ["--device", "GPU"], "--device GPU is OpenVINO's; the onnxruntime backend runs tiny.onnx"),
    ("xml", ["--device", "TPU"], "unknown OpenVINO device 'TPU'"),
    ("xml", ["--provider", "CUDAExecutionProvider"], "--provider CUDAExecutionProvider is ONNX Runtime's"),
    ("onnx", ["--requests", "2"], "--requests and --batch are for --mode throughput"),
    ("onnx", ["--mode", "throughput", "--batch", "0"], "--batch must be >= 1"),
])
def test_bad_flags_are_exit_2_in_one_line(files, tmp_path, capsys, model, extra, message):
    if model not in files:
        pytest.skip("openvino not installed")
    assert _run(files[model], files["video"], tmp_path / "x.jsonl", *extra) == BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x.jsonl").exists()
