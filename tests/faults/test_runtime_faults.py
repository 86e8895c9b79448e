"""python -m runtime against broken models, sources, frames and outputs. Its exit codes (python -m runtime --help, the
same as every command's, dualpath.exitcodes): 0 the source ended (or Ctrl-C), 1 a run that failed midway (a live
source lost, a video that stopped decoding), 2 bad input: a bad command line, a model / source / output that cannot be
used, no usable frame at all. Every failure is one line; JSON lines are whole lines; nothing runs before the checks."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.exitcodes import BAD_INPUT, OK, VERDICT
from fault_checks import ROOT, error_line, run_module
from runtime.__main__ import main

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
FRAMES = 60


def run(model, source, *extra) -> int:
    return main(["--model", str(model), "--source", str(source), "--headless", *map(str, extra)])


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A 60-frame MJPG AVI of generated scenes (128x128), and the byte span of every frame's JPEG in it."""
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.dataset import render_range

    scenes = render_range(SceneConfig(variants_per_class=1, backgrounds_per_kind=1), 0, 0, 6)["noisy"]
    path = tmp_path_factory.mktemp("video") / "scenes.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (128, 128))
    for i in range(FRAMES):
        writer.write(cv2.resize(scenes[i % len(scenes)], (128, 128))[:, :, ::-1])
    writer.release()
    data = path.read_bytes()
    movi = data.find(b"movi")
    starts = [i for i in range(movi, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    spans = [(s, data.find(b"\xff\xd9", s) + 2) for s in starts]
    assert len(spans) == FRAMES
    return path, spans


def _damaged(video, tmp_path, frames) -> str:
    """A copy of the video with these frames' JPEG data zeroed (they no longer decode; the others do)."""
    path, spans = video
    data = bytearray(path.read_bytes())
    for k in frames:
        start, end = spans[k]
        data[start:end] = bytes(end - start)
    out = tmp_path / "damaged.avi"
    out.write_bytes(bytes(data))
    return out


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _summary(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("summary: "))


# ------------------------------------------------------------------------------------------------ corrupt frames


@pytest.mark.parametrize("bad", [[0], [7], [59], list(range(10, 30)), [3, 5, 8, 13, 21, 34, 55]])
def test_undecodable_frames_are_skipped_and_counted(onnx_model, video, tmp_path, capsys, bad):
    source, jsonl = _damaged(video, tmp_path, bad), tmp_path / "out.jsonl"
    assert run(onnx_model, source, "--jsonl", jsonl) == 0
    out = capsys.readouterr().out
    line = _summary(out)
    assert line.startswith(f"summary: {FRAMES - len(bad)} frames ({len(bad)} undecodable")
    assert line.endswith("source end of file")
    records = _jsonl(jsonl)
    assert len(records) == FRAMES - len(bad)
    last_good = max(set(range(FRAMES)) - set(bad))
    assert records[-1]["skipped"] == len([k for k in bad if k < last_good])  # skipped before the last frame run


@pytest.mark.parametrize("limit, code", [(5, VERDICT), (21, OK), (20, VERDICT)])
def test_a_run_of_undecodable_frames_ends_the_video_at_the_limit(onnx_model, video, tmp_path, capsys, limit, code):
    source, jsonl = _damaged(video, tmp_path, range(10, 30)), tmp_path / "out.jsonl"
    assert run(onnx_model, source, "--jsonl", jsonl, "--max-bad-frames", limit) == code
    line = _summary(capsys.readouterr().out)
    if code == VERDICT:
        assert line.startswith("summary: 10 frames") and f"after {limit} undecodable frames in a row" in line
        assert len(_jsonl(jsonl)) == 10
    else:
        assert line.startswith("summary: 40 frames (20 undecodable") and _jsonl(jsonl)[-1]["skipped"] == 20


def test_a_video_that_never_decodes_is_bad_input(onnx_model, video, tmp_path, capsys):
    source = _damaged(video, tmp_path, range(0, 20))
    assert run(onnx_model, source, "--max-bad-frames", 5) == BAD_INPUT
    captured = capsys.readouterr()
    assert "no usable frame from the source" in _summary(captured.out)
    assert "after 5 undecodable frames in a row" in error_line(captured.err)


def test_random_damage_all_through_the_file(onnx_model, video, tmp_path, capsys):
    """The reported case: 300 random 20-byte overwrites (numpy seed 0) after the headers. The runtime reads every
    frame plain cv2.VideoCapture decodes, where it used to stop at the first bad one."""
    path, spans = video
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for _ in range(300):
        at = int(rng.integers(spans[0][0], len(data) - 20))
        data[at : at + 20] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    source = tmp_path / "random.avi"
    source.write_bytes(bytes(data))
    cap = cv2.VideoCapture(str(source))
    decodable = sum(bool(cap.read()[0]) for _ in range(FRAMES + 5))
    cap.release()
    assert 5 < decodable < FRAMES
    assert run(onnx_model, source) == 0
    line = _summary(capsys.readouterr().out)
    assert line.startswith(f"summary: {decodable} frames") and "undecodable" in line


# ------------------------------------------------------------------------------------------------ models


def _foreign(path, props, probs=20, recon=64, inp=64, input_name="image", outputs=("probs", "recon")):
    """Another model (not ours) carrying our metadata: input [N,3,inp,inp] -> probs [N,probs], recon [N,3,recon,recon]."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("GlobalAveragePool", [input_name], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["logits"]), helper.make_node("Sigmoid", ["logits"], [outputs[0]])]
    pool = inp // recon
    nodes.append(helper.make_node("AveragePool", [input_name], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool])
                 if pool > 1 else helper.make_node("Identity", [input_name], ["pooled"]))
    nodes.append(helper.make_node("Tanh", ["pooled"], ["recon_out"]))
    graph_outputs = [helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, ["N", probs])]
    if len(outputs) > 1:
        nodes[-1] = helper.make_node("Tanh", ["pooled"], [outputs[1]])
        graph_outputs.append(helper.make_tensor_value_info(outputs[1], TensorProto.FLOAT, ["N", 3, recon, recon]))
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, probs], np.ones(3 * probs, np.float32).tolist())
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT,
                                                                               ["N", 3, inp, inp])],
                              graph_outputs, initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def _props(onnx_model):
    return {p.key: p.value for p in onnx.load(str(onnx_model)).metadata_props}


@pytest.mark.parametrize("kind, shapes", [
    (dict(probs=10), "output 'probs' has shape [N, 10], the metadata needs [N, 20]"),
    (dict(probs=1000), "[N, 1000]"),
    (dict(recon=32), "output 'recon' has shape [N, 3, 32, 32], the metadata needs [N, 3, 64, 64]"),
    (dict(probs=10, recon=16), "[N, 10]"),
    (dict(outputs=("probs",)), "no output 'recon'"),
    (dict(outputs=("scores", "recon")), "no output 'probs'"),
    (dict(inp=32, recon=32), "input 'image' has shape [N, 3, 32, 32]"),
    (dict(input_name="data"), "no input 'image'"),
])
def test_a_foreign_model_with_copied_metadata_is_refused_naming_the_shapes(onnx_model, tmp_path, capsys, kind, shapes):
    model = _foreign(tmp_path / "foreign.onnx", _props(onnx_model), **kind)
    jsonl = tmp_path / "out.jsonl"
    assert run(model, _image(tmp_path, np.zeros((64, 64, 3), np.uint8)), "--jsonl", jsonl) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "is not the model its dualpath metadata describes" in line and shapes in line
    assert not jsonl.exists()


def test_a_foreign_model_with_matching_shapes_runs(onnx_model, tmp_path, capsys):
    """The check refuses what cannot work, not what merely is not ours: the shapes fit, it runs."""
    model = _foreign(tmp_path / "foreign.onnx", _props(onnx_model))
    assert run(model, _image(tmp_path, np.zeros((64, 64, 3), np.uint8))) == 0
    assert _summary(capsys.readouterr().out).startswith("summary: 1 frames")


@pytest.mark.parametrize("damage, message", [
    ("missing", "no model file at"),
    ("empty", "onnxruntime cannot load"),
    ("random", "onnxruntime cannot load"),
    ("truncated", "onnxruntime cannot load"),
    ("folder", "no model file at"),
    ("suffix", "unknown model file type '.pt'"),
    ("no-metadata", "carries no dualpath metadata"),
    ("metadata-not-json", "corrupt metadata"),
    ("metadata-other-format", "metadata format"),
    ("no-classes", "class_names is empty"),
])
def test_broken_models(onnx_model, tmp_path, capsys, damage, message):
    good = onnx_model
    model = tmp_path / ("model.pt" if damage == "suffix" else "model.onnx")
    if damage == "empty":
        model.write_bytes(b"")
    elif damage == "random":
        model.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        model.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif damage == "folder":
        model.mkdir()
    elif damage == "suffix":
        model.write_bytes(good.read_bytes())
    elif damage != "missing":
        proto = onnx.load(str(good))
        props = {p.key: p.value for p in proto.metadata_props}
        del proto.metadata_props[:]
        if damage == "metadata-not-json":
            props["mean"] = "[0.1, 0.2"
        elif damage == "metadata-other-format":
            props["format"] = "dualpath-model/99"
        elif damage == "no-classes":
            props["class_names"] = "[]"
        for key, value in (props.items() if damage != "no-metadata" else ()):
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(model))
    assert run(model, _image(tmp_path, np.zeros((8, 8, 3), np.uint8))) == BAD_INPUT
    assert message in error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ sources


def _image(tmp_path, array, name="frame.png"):
    path = tmp_path / name
    assert cv2.imwrite(str(path), array)
    return path


@pytest.mark.parametrize("source, message", [
    ("{tmp}/nothing.mp4", "no such file or folder"),
    ("{tmp}/empty", "no images in folder"),
    ("{tmp}/broken", "no usable frame from the source"),
    ("{tmp}/zeros.mp4", "cannot open video"),
    ("{tmp}/truncated.avi", "cannot open video"),
    ("{tmp}/bad.png", "cannot decode image"),
    ("{tmp}/empty.png", "cannot decode image"),
    ("foo://bar", "unknown source scheme"),
    ("csi://0", "GStreamer"),
    ("csi://x", "needs a sensor number"),
    ("/dev/video63", "cannot open camera /dev/video63"),
    ("rtsp://127.0.0.1:9/stream", "cannot open stream rtsp://127.0.0.1:9/stream"),
    ("http://127.0.0.1:9/video.mjpg", "cannot open stream"),
    ("", "empty source"),
])
def test_sources_that_cannot_be_used(onnx_model, video, tmp_path, capsys, source, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    for name in ("a.png", "b.jpg"):
        (tmp_path / "broken" / name).write_bytes(b"\x89PNG not an image")
    (tmp_path / "zeros.mp4").write_bytes(bytes(4096))
    (tmp_path / "truncated.avi").write_bytes(video[0].read_bytes()[:2000])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    (tmp_path / "empty.png").write_bytes(b"")
    jsonl = tmp_path / "out.jsonl"
    t0 = time.perf_counter()
    code = run(onnx_model, source.format(tmp=tmp_path), "--jsonl", jsonl, "--retries", "0")
    assert code == BAD_INPUT
    err = capsys.readouterr()
    if "no usable frame" in message:
        assert message in _summary(err.out) and message in error_line(err.err)
    else:
        assert message in error_line(err.err)
    assert time.perf_counter() - t0 < 30
    assert not jsonl.exists() or jsonl.read_text() == ""


@pytest.mark.parametrize("name, array", [
    ("grey.png", np.full((48, 64), 128, np.uint8)),
    ("bgra.png", np.full((48, 64, 4), 200, np.uint8)),
    ("one-pixel.png", np.full((1, 1, 3), 90, np.uint8)),
    ("one-by-wide.png", np.full((1, 500, 3), 90, np.uint8)),
    ("huge.jpg", np.full((3000, 4000, 3), 120, np.uint8)),
    ("sixteen-bit.png", np.full((48, 64, 3), 40000, np.uint16)),
    ("sixteen-bit-grey.png", np.full((48, 64), 1000, np.uint16)),
    ("sixteen-bit-bgra.png", np.full((48, 64, 4), 65535, np.uint16)),
])
def test_unusual_frames_run(onnx_model, tmp_path, capsys, name, array):
    jsonl = tmp_path / "out.jsonl"
    assert run(onnx_model, _image(tmp_path, array, name), "--jsonl", jsonl) == 0
    assert _summary(capsys.readouterr().out).startswith("summary: 1 frames")
    (record,) = _jsonl(jsonl)
    assert len(record["probs"]) == contract.NUM_CLASSES and all(0 <= p <= 1 for p in record["probs"])


def test_a_frame_of_an_unsupported_kind_is_named(onnx_model, tmp_path, capsys):
    source = _image(tmp_path, np.full((48, 64, 3), 0.5, np.float32), "float.tiff")
    assert run(onnx_model, source) == BAD_INPUT
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert "no usable frame" in _summary(captured.out) and "got dtype float32" in _summary(captured.out)


def test_a_folder_with_some_broken_images_runs_the_others(onnx_model, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    _image(folder, np.zeros((32, 32, 3), np.uint8), "1.png")
    (folder / "2.png").write_bytes(b"broken")
    _image(folder, np.full((32, 32), 255, np.uint8), "3.png")
    jsonl = tmp_path / "out.jsonl"
    assert run(onnx_model, folder, "--jsonl", jsonl) == 0
    line = _summary(capsys.readouterr().out)
    assert line.startswith("summary: 2 frames") and "1 unreadable images skipped" in line
    assert [r["name"] for r in _jsonl(jsonl)] == ["1.png", "3.png"] and _jsonl(jsonl)[-1]["skipped"] == 1


# ------------------------------------------------------------------------------------------------ outputs


@pytest.mark.parametrize("flag, where", [
    ("--jsonl", "under-a-file"), ("--jsonl", "read-only"), ("--jsonl", "a-folder"),
    ("--save", "under-a-file"), ("--save", "read-only"),
    ("--benchmark-json", "under-a-file"), ("--benchmark-json", "read-only"), ("--benchmark-json", "a-folder"),
])
def test_unwritable_outputs_fail_before_the_run(onnx_model, request, video, tmp_path, afile, capsys, flag, where):
    name = {"--jsonl": "out.jsonl", "--save": "out.avi", "--benchmark-json": "bench.json"}[flag]
    if where == "under-a-file":
        target = afile / name
    elif where == "read-only":
        target = request.getfixturevalue("readonly_dir") / name
    else:
        target = tmp_path / "folder"
        target.mkdir()
    t0 = time.perf_counter()
    code = run(onnx_model, video[0], flag, target, "--loop", "--max-frames", "2000")
    assert code == BAD_INPUT
    captured = capsys.readouterr()
    error_line(captured.err)
    assert "summary:" not in captured.out  # refused before the first frame, not after 2000
    assert time.perf_counter() - t0 < 10
    assert not (target.is_file())


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_an_output_that_fills_up_midway_is_one_line_and_exit_2(onnx_model, video, capsys):
    """--jsonl on a full disk: the first buffer that cannot be written ends the run, one line, no traceback."""
    assert run(onnx_model, video[0], "--jsonl", "/dev/full", "--loop", "--max-frames", "2000") == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert line.startswith("error: cannot write --jsonl /dev/full: No space left on device")


# ------------------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "2"], "--threshold"),
    (["--max-frames", "0"], "--max-frames"),
    (["--max-bad-frames", "0"], "--max-bad-frames"),
    (["--smooth", "0"], "--smooth"),
    (["--save", "out.txt"], "--save needs a video file name"),
    (["--top", "0"], "--top"),
    (["--retries", "-1"], "--retries"),
    (["--warmup", "-1"], "--warmup"),
    (["--threads", "0"], "--threads"),
    (["--benchmark", "--max-frames", "5", "--warmup", "5"], "must exceed --warmup"),
])
def test_bad_options_exit_2(onnx_model, video, tmp_path, capsys, extra, message):
    assert run(onnx_model, video[0], *extra) == BAD_INPUT
    assert message in error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ signals


@pytest.mark.slow  # a runtime process, signalled
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_run_with_a_summary_and_whole_lines(onnx_model, video, tmp_path, sig):
    jsonl, saved = tmp_path / "live.jsonl", tmp_path / "overlay.avi"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "--model", str(onnx_model), "--source",
                             str(video[0]), "--headless", "--loop", "--jsonl", str(jsonl), "--save", str(saved)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (jsonl.exists() and jsonl.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
    assert _summary(out).endswith("interrupted")
    frames = len(_jsonl(jsonl))  # every line whole
    cap = cv2.VideoCapture(str(saved))
    assert frames >= 1 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames  # the video is closed, every frame in it


def test_the_real_command_prints_one_line_for_a_foreign_model(onnx_model, tmp_path):
    model = _foreign(tmp_path / "foreign.onnx", _props(onnx_model), probs=10)
    done = run_module("runtime", "--model", model, "--source", _image(tmp_path, np.zeros((9, 9, 3), np.uint8)),
                      "--headless")
    assert done.returncode == BAD_INPUT and "[N, 10]" in error_line(done.stderr) and done.stdout == ""
