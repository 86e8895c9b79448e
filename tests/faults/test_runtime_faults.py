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


# ------------------------------------------------------------------------------------------------ issue 19: outputs


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


@pytest.fixture
def inputs(onnx_model, video, tmp_path):
    """Copies a run reads, in tmp_path: the model, the video, a folder of two images, and a fake IR and engine (the
    check runs before any model is loaded)."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        _image(folder, np.full((32, 32, 3), 90, np.uint8), name)
    for name in ("m.xml", "m.bin", "m.engine", "m.engine.json"):
        (tmp_path / name).write_bytes(b"weights of " + name.encode())
    return {"model": _copy(onnx_model, tmp_path / "m.onnx"), "video": _copy(video[0], tmp_path / "v.avi"),
            "folder": folder, "dir": tmp_path}


def _same_bytes(paths_before):
    return all(p.read_bytes() == before for p, before in paths_before.items())


@pytest.mark.parametrize("case", [
    "save-over-source", "jsonl-over-source", "jsonl-over-model", "bench-over-model", "jsonl-over-source-via-link",
    "jsonl-over-model-hard-link", "jsonl-over-source-spelled-otherwise", "jsonl-over-an-image-of-the-folder",
    "jsonl-over-ir-weights", "jsonl-over-engine-sidecar", "save-and-jsonl-one-file", "jsonl-and-bench-one-file",
])
def test_no_output_is_written_over_a_file_the_run_reads(inputs, tmp_path, capsys, case):
    """Issue 19, 1: --save v.mp4 on --source v.mp4 truncated the video; --jsonl m.onnx replaced the model."""
    d, model, video = inputs["dir"], inputs["model"], inputs["video"]
    source, extra = video, []
    if case == "save-over-source":
        extra = ["--save", video]
    elif case == "jsonl-over-source":
        extra = ["--jsonl", video]
    elif case == "jsonl-over-model":
        extra = ["--jsonl", model]
    elif case == "bench-over-model":
        extra = ["--benchmark-json", model]
    elif case == "jsonl-over-source-via-link":
        (d / "link.avi").symlink_to(video)
        extra = ["--jsonl", d / "link.avi"]
    elif case == "jsonl-over-model-hard-link":
        os.link(model, d / "hard.onnx")
        extra = ["--jsonl", d / "hard.onnx"]
    elif case == "jsonl-over-source-spelled-otherwise":
        extra = ["--jsonl", f"{d}/frames/../v.avi"]
    elif case == "jsonl-over-an-image-of-the-folder":
        source, extra = inputs["folder"], ["--jsonl", inputs["folder"] / "b.png"]
    elif case == "jsonl-over-ir-weights":
        model, extra = d / "m.xml", ["--jsonl", d / "m.bin"]
    elif case == "jsonl-over-engine-sidecar":
        model, extra = d / "m.engine", ["--jsonl", d / "m.engine.json"]
    elif case == "save-and-jsonl-one-file":
        extra = ["--save", d / "out.avi", "--jsonl", d / "out.avi"]
    elif case == "jsonl-and-bench-one-file":
        extra = ["--jsonl", d / "out.json", "--benchmark-json", d / "out.json"]
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    assert run(model, source, *extra) == BAD_INPUT
    captured = capsys.readouterr()
    line = error_line(captured.err)
    assert "which this command reads" in line or "are the same file" in line, line
    assert "summary:" not in captured.out
    assert _same_bytes(before) and not (d / "out.avi").exists() and not (d / "out.json").exists()


def test_the_real_command_refuses_save_over_its_source(inputs):
    video = inputs["video"]
    before = video.read_bytes()
    done = run_module("runtime", "--model", inputs["model"], "--source", video, "--headless", "--save", video)
    assert done.returncode == BAD_INPUT and "--save" in error_line(done.stderr) and video.read_bytes() == before


def _broken_folder(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"\x89PNG not an image")
    return folder


@pytest.mark.parametrize("flag, name", [("--jsonl", "prev.jsonl"), ("--save", "prev.avi"),
                                        ("--benchmark-json", "prev.json")])
def test_a_run_with_no_usable_frame_leaves_existing_outputs_as_they_were(onnx_model, tmp_path, capsys, flag, name):
    """Issue 19, 4: `seq 1 5 > prev.jsonl`, a folder of two broken PNGs: exit 2, and prev.jsonl was 0 bytes."""
    prev = tmp_path / name
    prev.write_text("".join(f"{i}\n" for i in range(1, 6)))
    assert run(onnx_model, _broken_folder(tmp_path), flag, prev) == BAD_INPUT
    assert "no usable frame" in error_line(capsys.readouterr().err)
    assert prev.read_text() == "1\n2\n3\n4\n5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["broken", name])  # no temporary, no partial


@pytest.mark.parametrize("flag", ["--jsonl", "--save"])
def test_a_run_that_fails_midway_leaves_existing_outputs_and_keeps_its_own_beside(onnx_model, video, tmp_path,
                                                                                    capsys, flag):
    """Frames 10..29 do not decode, --max-bad-frames 5: exit 1 after 10 frames. The old file stays; the 10 frames'
    output is NAME.partial.EXT, and the error line says so."""
    prev = tmp_path / ("prev.jsonl" if flag == "--jsonl" else "prev.avi")
    prev.write_bytes(b"the previous run\n")
    source = _damaged(video, tmp_path, range(10, 30))
    assert run(onnx_model, source, flag, prev, "--max-bad-frames", 5) == VERDICT
    line = error_line(capsys.readouterr().err)
    partial = prev.with_name(prev.stem + ".partial" + prev.suffix)
    assert prev.read_bytes() == b"the previous run\n" and str(partial) in line and "left as it was" in line
    if flag == "--jsonl":
        assert len(_jsonl(partial)) == 10
    else:
        assert int(cv2.VideoCapture(str(partial)).get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_model_that_cannot_load_leaves_existing_outputs(tmp_path, video, capsys):
    prev = tmp_path / "prev.jsonl"
    prev.write_text("kept\n")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert run(tmp_path / "bad.onnx", video[0], "--jsonl", prev) == BAD_INPUT
    error_line(capsys.readouterr().err)
    assert prev.read_text() == "kept\n"


@pytest.mark.parametrize("flag", ["--jsonl", "--benchmark-json"])
def test_a_run_that_ends_well_replaces_existing_outputs_whole(onnx_model, video, tmp_path, capsys, flag):
    prev = tmp_path / ("prev.jsonl" if flag == "--jsonl" else "prev.json")
    prev.write_text("old\n")
    assert run(onnx_model, video[0], flag, prev, "--max-frames", 30) == OK
    if flag == "--jsonl":
        assert len(_jsonl(prev)) == 30
    else:
        assert json.loads(prev.read_text())["frames"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [prev.name]


def test_a_new_output_is_not_created_by_a_run_with_no_usable_frame(onnx_model, tmp_path, capsys):
    out = tmp_path / "new.jsonl"
    assert run(onnx_model, _broken_folder(tmp_path), "--jsonl", out) == BAD_INPUT
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ issue 19: metadata


@pytest.mark.parametrize("field, value", [
    ("class_names", "null"), ("class_names", '"spoon"'), ("class_names", "[1, 2]"), ("image_size", '"64"'),
    ("image_size", "true"), ("image_size", "64.5"), ("mean", "[0.4, 0.4]"), ("mean", "null"), ("std", '["a", "b", "c"]'),
    ("input_name", "5"), ("output_names", "null"),
])
def test_wrongly_typed_metadata_is_one_line_naming_the_field(onnx_model, tmp_path, capsys, field, value):
    """Issue 19, 15: every file we read is validated against its schema (exit 2, one line naming file and field)."""
    proto = onnx.load(str(onnx_model))
    props = {p.key: p.value for p in proto.metadata_props}
    del proto.metadata_props[:]
    for key, v in (props | {field: value}).items():
        proto.metadata_props.add(key=key, value=v)
    model = tmp_path / "typed.onnx"
    onnx.save(proto, str(model))
    assert run(model, _image(tmp_path, np.zeros((8, 8, 3), np.uint8))) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert str(model) in line and field in line


@pytest.mark.parametrize("sidecar, field", [
    ({"metadata": None}, "metadata"), ({"metadata": {"class_names": ["a"]}}, "metadata"),
    ({"metadata": {}, "tensorrt_version": 10}, "tensorrt_version"),
    ({"metadata": {}, "compute_capability": [8, "x"]}, "not one this project writes"),
])
def test_a_wrongly_typed_engine_sidecar_is_one_error_naming_the_file(tmp_path, sidecar, field):
    from runtime.backends.trt_engine import read_sidecar

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"")
    (tmp_path / "m.engine.json").write_text(json.dumps(sidecar))
    with pytest.raises(ValueError, match=field) as info:
        read_sidecar(engine)
    assert "m.engine.json" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------ issue 19: --timeout


@pytest.fixture
def silent_server():
    """A local TCP port that accepts connections and never answers (an RTSP / HTTP server that hangs)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_stream_that_never_answers_fails_after_the_timeout(onnx_model, silent_server, tmp_path, capsys, scheme):
    """Issue 19, 17: an rtsp:// server that accepts and never answers was waited on for 30 s with nothing said."""
    url = f"{scheme}://127.0.0.1:{silent_server}/stream"
    t0 = time.perf_counter()
    assert run(onnx_model, url, "--timeout", "0.5", "--retries", "0", "--jsonl", tmp_path / "o.jsonl") == BAD_INPUT
    assert time.perf_counter() - t0 < 6
    err = capsys.readouterr().err
    assert f"connecting to {url}" in err
    line = error_line(err)
    assert url in line and "--timeout" in line
    assert not (tmp_path / "o.jsonl").exists()


def test_an_open_that_hangs_is_given_up_after_the_timeout():
    """Backends that take no timeout (V4L2, GStreamer): the open runs in a watchdog thread, and a capture that opens
    after it was given up on is released (nobody else holds it)."""
    import threading

    from runtime.sources import SourceError, _video_capture

    released = threading.Event()

    class Hanging:
        def __init__(self, *args):
            time.sleep(1.5)

        def release(self):
            released.set()

    import runtime.sources as sources

    real = sources.cv2.VideoCapture
    sources.cv2.VideoCapture = Hanging
    try:
        opener = _video_capture("/dev/video9", cv2.CAP_V4L2, "cannot open camera /dev/video9: is it connected?",
                                timeout_s=0.3, description="camera /dev/video9")
        t0 = time.perf_counter()
        with pytest.raises(SourceError, match=r"camera /dev/video9 did not answer within 0.3 s \(--timeout\)"):
            opener()
        assert time.perf_counter() - t0 < 1.2 and not released.is_set()
        assert released.wait(10), "the capture that opened late was never released"
    finally:
        sources.cv2.VideoCapture = real


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(onnx_model, video, capsys, value):
    assert run(onnx_model, video[0], "--timeout", value) == BAD_INPUT
    assert "--timeout" in error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ issue 19: docs


def _readme_examples():
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    found = []
    for line in re.findall(r"^python -m (?:runtime(?:\.drift)?|calibration) .*$", text, flags=re.M):
        argv = shlex.split(line.split("  #")[0])
        found.append(pytest.param(argv[2], argv[3:], id=" ".join(argv[2:5])))
    return found


@pytest.mark.parametrize("module, argv", _readme_examples())
def test_every_readme_example_of_these_commands_parses(module, argv):
    """Issue 19, 17: README's `python -m calibration ... --preview` did not match the flag (it takes a count)."""
    import importlib

    parser = importlib.import_module(f"{module}.__main__").build_parser()
    parser.parse_args(argv)  # argparse exits 2 on a flag the command does not take


def test_the_jetson_guide_pins_cuda_python_to_cuda_12():
    """JetPack 6 ships CUDA 12; `pip install cuda-python` brings the CUDA 13 build."""
    from runtime.backends.trt import CUDA_PYTHON_PIN

    assert CUDA_PYTHON_PIN == "cuda-python>=12,<13"
    for path in ("README.md", "jetson/build_engine.sh", "pyproject.toml"):
        assert CUDA_PYTHON_PIN in (ROOT / path).read_text().replace('"', "").replace("'", ""), path
