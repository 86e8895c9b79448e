"""python -m runtime end to end with real backends: a tiny dual-path model exported to ONNX (and OpenVINO IR), run on
a video made from generated scenes; its predictions match the FP32 model fed the scenes directly.

Tolerances: through a lossless video (FFV1) the runtime's input tensor equals dualpath.contract.preprocess(scene)
exactly (nearest x4 upscale, then INTER_AREA / 4), so probabilities match the backend fed the scenes to 1e-5 (JSON
keeps 6 decimals) and torch to 1e-4 (ONNX Runtime vs torch float32 kernels). Through a lossy mp4v video the frames
differ from the scenes by codec error (mean absolute pixel error printed by the test), hence the looser bound.
"""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes import SceneConfig
from dualpath.scenes.dataset import render_range
from runtime.__main__ import main
from runtime.demo_video import write_scene_video

pytest.importorskip("onnxruntime")
N_SCENES = 12
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes():
    return render_range(SceneConfig(variants_per_class=1, backgrounds_per_kind=1), seed=11, start=0, stop=N_SCENES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny dual-path model (the real architecture, densenet_tiny) and its ONNX / OpenVINO IR with metadata."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    from dualpath.model import ModelConfig, build_model
    from export.onnx_fp32 import embed_metadata, export_onnx
    from runtime.backends import ModelMetadata

    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="densenet_tiny", hidden=32)).eval()
    out = tmp_path_factory.mktemp("model")
    export_onnx(model, out / "raw.onnx")
    proto = onnx.load(str(out / "raw.onnx"))
    metadata = ModelMetadata.from_contract(precision="fp32")
    embed_metadata(proto, metadata)
    onnx.save(proto, str(out / "model.onnx"))
    files = {"model": model, "onnx": out / "model.onnx"}
    try:
        import openvino as ov

        from runtime.backends.ov import write_rt_info

        ir = ov.convert_model(str(out / "model.onnx"))
        write_rt_info(ir, metadata.to_props())
        ov.save_model(ir, str(out / "model.xml"))
        files["xml"] = out / "model.xml"
    except ImportError:
        pass
    return files


@pytest.fixture(scope="module")
def videos(scenes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {ext: write_scene_video(folder / f"scenes{ext}", scenes["noisy"], size=256) for ext in (".mkv", ".mp4")}


def _probs(jsonl: Path) -> np.ndarray:
    return np.array([json.loads(line)["probs"] for line in jsonl.read_text().splitlines()])


def _torch_probs(model, images: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(contract.preprocess(images))).logits).numpy()


def test_runtime_on_a_scene_video_matches_the_fp32_model(exported, scenes, videos, tmp_path, capsys):
    from runtime.backends import load_backend

    out = tmp_path / "run.jsonl"
    code = main(["--model", str(exported["onnx"]), "--source", str(videos[".mkv"]), "--headless", "--jsonl", str(out)])
    assert code == 0
    assert f"summary: {N_SCENES} frames" in capsys.readouterr().out
    runtime_probs = _probs(out)
    with load_backend(exported["onnx"]) as backend:
        direct = backend.infer({"image": contract.preprocess(scenes["noisy"])})["probs"]
    np.testing.assert_allclose(runtime_probs, direct, atol=1e-5)
    np.testing.assert_allclose(runtime_probs, _torch_probs(exported["model"], scenes["noisy"]), atol=1e-4)


def test_lossy_video_stays_close_to_the_scenes(exported, scenes, videos, tmp_path):
    out = tmp_path / "lossy.jsonl"
    assert main(["--model", str(exported["onnx"]), "--source", str(videos[".mp4"]), "--headless", "--jsonl", str(out)]) == 0
    cap = cv2.VideoCapture(str(videos[".mp4"]))
    decoded = [cv2.cvtColor(cv2.resize(cap.read()[1], (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
               for _ in range(N_SCENES)]
    pixel_error = np.abs(np.array(decoded, np.float32) - scenes["noisy"]).mean()
    print(f"mp4v: mean absolute pixel error after resizing {pixel_error:.2f} / 255")
    assert pixel_error < 6
    worst = np.abs(_probs(out) - _torch_probs(exported["model"], scenes["noisy"])).max()
    print(f"mp4v: largest probability difference from the FP32 model on the scenes {worst:.4f}")
    assert worst < 0.02  # measured ~1e-4 with this random-init tiny model


def test_openvino_ir_benchmark_line_and_json(exported, videos, tmp_path, capsys):
    if "xml" not in exported:
        pytest.skip("openvino is not installed")
    report = tmp_path / "bench.json"
    code = main(["--model", str(exported["xml"]), "--source", str(videos[".mkv"]), "--benchmark", "--loop",
                 "--max-frames", "40", "--warmup", "5", "--benchmark-json", str(report), "--threads", "1"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("benchmark: openvino model.xml, 35 frames in ")
    data = json.loads(report.read_text())
    assert data["frames"] == 35 and data["fps"] > 0 and data["latency_ms"]["infer"]["p50"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "{tmp}/missing.onnx", "--source", "{video}"], "no model file at"),
        (["--model", "{tmp}/weights.pt", "--source", "{video}"], "unknown model file type '.pt'"),
        (["--model", "{onnx}", "--source", "{tmp}/nothing.mp4"], "no such file or folder"),
        (["--model", "{onnx}", "--source", "{tmp}/broken.mp4"], "cannot open video"),
        (["--model", "{onnx}", "--source", "{tmp}/broken.png"], "cannot decode image"),
        (["--model", "{tmp}/broken.onnx", "--source", "{video}"], "onnxruntime cannot load"),
        (["--model", "{onnx}", "--source", "csi://0"], "GStreamer"),
    ],
)
def test_bad_inputs_give_clear_messages_and_exit_2(args, message, exported, videos, tmp_path, capsys):
    (tmp_path / "weights.pt").write_bytes(b"pt")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "broken.onnx").write_bytes(b"not a protobuf")
    if message == "GStreamer" and "GStreamer:                   YES" in cv2.getBuildInformation():
        pytest.skip("this OpenCV has GStreamer")
    fill = {"tmp": tmp_path, "video": videos[".mkv"], "onnx": exported["onnx"]}
    assert main([a.format(**fill) for a in args] + ["--headless"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_options_exit_2(capsys):
    assert main(["--model", "m.onnx", "--source", "0", "--smooth", "2"]) == 2
    assert "--smooth is an EMA weight" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--model", "m.onnx"])
    assert e.value.code == 2


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, **kwargs)


def test_help_leaves_torch_unimported():
    done = subprocess.run([sys.executable, "-m", "runtime", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "csi://0" in done.stdout and "exit codes" in done.stdout
    code = ("import sys\nfrom runtime.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, file=sys.stderr)")
    assert _python(code).stderr.strip().endswith("False")


def test_a_whole_run_leaves_torch_unimported(exported, videos, tmp_path):
    code = (
        "import sys\nfrom runtime.__main__ import main\n"
        f"rc = main(['--model', {str(exported['onnx'])!r}, '--source', {str(videos['.mkv'])!r}, '--headless', "
        f"'--save', {str(tmp_path / 'o.avi')!r}, '--jsonl', {str(tmp_path / 'o.jsonl')!r}, '--smooth', '0.5'])\n"
        "print('torch imported:', 'torch' in sys.modules, 'rc:', rc)"
    )
    done = _python(code)
    assert "torch imported: False rc: 0" in done.stdout, done.stderr
    assert f"summary: {N_SCENES} frames" in done.stdout


@pytest.mark.slow  # a runtime process, signalled
def test_ctrl_c_ends_with_a_summary_and_exit_code_0(exported, videos, tmp_path):
    jsonl = tmp_path / "live.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--model", str(exported["onnx"]), "--source", str(videos[".mkv"]),
         "--headless", "--loop", "--jsonl", str(jsonl)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (jsonl.exists() and jsonl.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("summary: ") and "interrupted" in out
    assert all(json.loads(line) for line in jsonl.read_text().splitlines())  # no half-written last line
