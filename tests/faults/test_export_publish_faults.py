"""A path read from a file resolves inside its folder, links included, or is refused (issue 19, item 3); a failed
export never tears the previous one: what publishing will touch is checked before any work, and publishing is all or
nothing (item 5)."""
from __future__ import annotations

import errno
import json
import os

import pytest

from dualpath.exitcodes import BAD_INPUT
from dualpath.files import OutputError, inside
from export.folder import MANIFEST, MANIFEST_FORMAT, file_table, publish
from fault_checks import error_line, temporaries

PREVIOUS = {  # a previous --int8 export's files (contents do not matter before any work is done)
    "model_fp32.onnx": b"fp32", "metadata.json": b"{}", "calibration_ranges.json": b"{\"a\": 1}",
    "calibration_ranges_shared_concat.json": b"{\"b\": 2}", "model_int8_u8.onnx": b"u8", "model_int8_s8.onnx": b"s8",
    "drift/model_int8_u8_onnx/drift.json": b"{\"u8\": 1}", "drift/model_int8_s8_onnx/drift.json": b"{\"s8\": 1}",
}


def _previous_export(out, files=PREVIOUS, extra_listed=()):
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    table = file_table(out)
    table.update({name: {"sha256": "0" * 64, "bytes": 1} for name in extra_listed})
    (out / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "files": table, "drift": {}}))
    return out


def _snapshot(folder):
    """Every file under `folder` (links not followed) -> its bytes, or what a link points at."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            if os.path.islink(p):
                found[rel] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                found[rel] = open(p, "rb").read()
    return found


def _export(trained, out, tmp_path, *extra):
    from export.__main__ import main

    return main(["--checkpoint", str(trained / "best.pt"), "--out", str(out), "--int8", "--backends", "onnx",
                 "--threads", "1", "--data-root", str(tmp_path / "data"), *map(str, extra)])


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work\n")
    return folder


# ------------------------------------------------------------------------------------------------ item 3


@pytest.mark.parametrize("kind", ["link-folder", "dotdot", "absolute", "drift-dotdot", "link-file", "drift-link"])
def test_a_manifest_entry_leading_out_of_the_export_is_refused(trained, tmp_path, capsys, elsewhere, kind):
    pytest.importorskip("torch")
    out = _previous_export(tmp_path / "e1")
    name = {"link-folder": "link/thesis.txt", "dotdot": "../elsewhere/thesis.txt",
            "absolute": str(elsewhere / "thesis.txt"), "drift-dotdot": "drift/../../elsewhere/thesis.txt",
            "link-file": "model_fp16.onnx", "drift-link": "drift/model_fp16_onnx/thesis.txt"}[kind]
    if kind == "link-folder":
        (out / "link").symlink_to(elsewhere)
    elif kind == "link-file":
        (out / "model_fp16.onnx").symlink_to(elsewhere / "thesis.txt")
    elif kind == "drift-link":
        (out / "drift" / "model_fp16_onnx").symlink_to(elsewhere)
    _previous_export(out, {}, extra_listed=[name])  # the manifest now lists it too
    before = _snapshot(out)
    assert _export(trained, out, tmp_path) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "outside" in line or "leads out" in line
    assert (elsewhere / "thesis.txt").read_text() == "four years of work\n"
    assert _snapshot(out) == before and not temporaries(out)


def test_a_manifest_whose_files_are_not_an_object_is_refused(trained, tmp_path, capsys):
    out = _previous_export(tmp_path / "e1")
    (out / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "files": ["model_fp32.onnx"]}))
    before = _snapshot(out)
    assert _export(trained, out, tmp_path) == BAD_INPUT
    assert "files" in error_line(capsys.readouterr().err)
    assert _snapshot(out) == before


@pytest.mark.parametrize("report", ["../../elsewhere", "/tmp", "link", None])
def test_a_baseline_whose_report_leads_out_is_refused(trained, tmp_path, capsys, elsewhere, report):
    base = tmp_path / "accepted"
    base.mkdir()
    (elsewhere / "drift.json").write_text(json.dumps({"config": {}, "candidate": {}}))
    (base / "link").symlink_to(elsewhere)
    (base / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "files": {},
                                             "drift": {"model_int8_u8.onnx": {"report": report}}}))
    assert _export(trained, tmp_path / "export", tmp_path, "--baseline", base) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "drift report" in line and str(base) in line
    assert not (tmp_path / "export" / MANIFEST).exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "link"])
def test_a_data_set_manifest_naming_a_file_outside_is_refused(dataset, tmp_path, kind):
    import shutil

    from dualpath.scenes import DatasetError, load_dataset

    copy = tmp_path / "scenes"
    shutil.copytree(dataset.path, copy)
    outside = tmp_path / "outside.npy"
    shutil.copyfile(copy / "labels.npy", outside)
    manifest = json.loads((copy / "manifest.json").read_text())
    if kind == "link":
        (copy / "labels.npy").unlink()
        (copy / "labels.npy").symlink_to(outside)
    else:
        manifest["files"]["labels"]["file"] = "../outside.npy" if kind == "dotdot" else str(outside)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="outside|leads out"):
        load_dataset(copy)


def test_the_benchmark_never_reads_a_listed_model_outside_the_export(exported, tmp_path, capsys, elsewhere):
    import shutil

    from export.benchmark import main as bench_main

    out = tmp_path / "export"
    shutil.copytree(exported, out)
    shutil.copyfile(exported / "model_fp32.onnx", elsewhere / "model_fp32.onnx")
    (out / "model_fp32.onnx").unlink()
    (out / "model_fp32.onnx").symlink_to(elsewhere / "model_fp32.onnx")
    assert bench_main(["--export", str(out), "--iters", "10", "--rounds", "1", "--threads", "1"]) == BAD_INPUT
    assert "leads out" in error_line(capsys.readouterr().err)
    assert not (out / "benchmark.md").exists()


@pytest.mark.parametrize("name, ok", [
    ("model.onnx", True), ("drift/a/drift.json", True), ("a/../b", False), ("..", False), ("/etc/passwd", False),
    ("", False), (None, False), (3, False), ("link/x", False), ("inner/x", True),
])
def test_inside(tmp_path, elsewhere, name, ok):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "link").symlink_to(elsewhere)
    (tmp_path / "f" / "real").mkdir()
    (tmp_path / "f" / "inner").symlink_to(tmp_path / "f" / "real")  # a link that stays inside is fine
    if ok:
        assert inside(tmp_path / "f", name) == tmp_path / "f" / name
    else:
        with pytest.raises(ValueError):
            inside(tmp_path / "f", name)


# ------------------------------------------------------------------------------------------------ item 5


def _drift_elsewhere(kind, out, request):
    drift = out / "drift"
    if kind == "plain-file":
        import shutil

        shutil.rmtree(drift)
        drift.write_text("not a folder\n")
    elif kind == "link-to-tmpfs":
        import shutil

        disk = request.getfixturevalue("full_disk")("1m")
        shutil.copytree(drift, disk / "drift")
        shutil.rmtree(drift)
        drift.symlink_to(disk / "drift")
    elif kind == "tmpfs-mount":
        import shutil
        import subprocess

        shutil.rmtree(drift)
        drift.mkdir()
        if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(drift)],
                                                            capture_output=True).returncode != 0:
            pytest.skip("a tmpfs mounted as drift/ needs `mount -t tmpfs` (root allowed to mount)")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(drift)], capture_output=True))
    elif kind == "report-folder-a-file":
        import shutil

        shutil.rmtree(drift / "model_int8_u8_onnx")
        (drift / "model_int8_u8_onnx").write_text("x\n")
    elif kind == "artifact-a-folder":
        (out / "model_int8_s8.onnx").unlink()
        (out / "model_int8_s8.onnx").mkdir()
    return drift


@pytest.mark.parametrize("kind", ["plain-file", "link-to-tmpfs", "tmpfs-mount", "report-folder-a-file",
                                  "artifact-a-folder"])
def test_what_publishing_touches_is_checked_before_any_work(request, trained, tmp_path, capsys, kind):
    out = _previous_export(tmp_path / "e1")
    _drift_elsewhere(kind, out, request)
    before = _snapshot(out)
    assert _export(trained, out, tmp_path) == BAD_INPUT
    line = error_line(capsys.readouterr().err)
    assert "Errno" not in line and ("--out" in line or "remove" in line)
    assert _snapshot(out) == before and not (tmp_path / "data").exists()  # nothing generated, nothing replaced
    assert not list(out.glob(".dualpath-export-stage-*")) and not temporaries(out)


def _staged(stage):
    new = {"model_fp32.onnx": b"new fp32", "metadata.json": b"{\"new\": 1}", "calibration_ranges.json": b"new a",
           "calibration_ranges_shared_concat.json": b"new b", "model_int8_u8.onnx": b"new u8",
           "drift/model_int8_u8_onnx/drift.json": b"new", "drift/model_int8_u8_onnx/drift.md": b"new md"}
    for name, data in new.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)
    return new


def _publish_setup(tmp_path):
    out = _previous_export(tmp_path / "e1")
    (out / "thesis.txt").write_text("mine\n")  # a user's file: never touched
    stage = out / ".dualpath-export-stage-1"
    stage.mkdir()
    new = _staged(stage)
    previous = [n for n in json.loads((out / MANIFEST).read_text())["files"]]
    return out, stage, new, previous


@pytest.mark.parametrize("fail_at", [1, 3, 8, 9, 12, 15, 16])
def test_a_publish_that_fails_midway_puts_the_previous_export_back(tmp_path, monkeypatch, fail_at):
    import export.folder as folder

    out, stage, new, previous = _publish_setup(tmp_path)
    before = {k: v for k, v in _snapshot(out).items() if not k.startswith(".dualpath")}
    calls = []
    real = os.replace

    def failing(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise OSError(errno.EXDEV, "Invalid cross-device link", str(dst))
        return real(src, dst)

    monkeypatch.setattr(folder.os, "replace", failing)
    with pytest.raises(OutputError) as caught:
        publish(stage, out, previous, {"format": MANIFEST_FORMAT})
    message = str(caught.value)
    assert "\n" not in message and str(out) in message and "previous export is as it was" in message
    after = {k: v for k, v in _snapshot(out).items() if not k.startswith(".dualpath")}
    assert after == before  # every previous file back, the manifest the old one, no new file left


def test_a_manifest_that_cannot_be_written_puts_the_previous_export_back(tmp_path, monkeypatch):
    import export.atomic

    out, stage, new, previous = _publish_setup(tmp_path)
    before = {k: v for k, v in _snapshot(out).items() if not k.startswith(".dualpath")}

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export.atomic, "write_json", full)
    with pytest.raises(OutputError, match="no space left"):
        publish(stage, out, previous, {"format": MANIFEST_FORMAT})
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".dualpath")} == before


def test_a_publish_replaces_the_previous_files_only(tmp_path):
    out, stage, new, previous = _publish_setup(tmp_path)
    publish(stage, out, previous, {"format": MANIFEST_FORMAT})
    assert (out / "thesis.txt").read_text() == "mine\n"
    assert not (out / "model_int8_s8.onnx").exists() and not (out / "drift" / "model_int8_s8_onnx").exists()
    for name, data in new.items():
        assert (out / name).read_bytes() == data
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == set(new)


def test_a_file_appearing_under_a_new_name_is_refused_not_replaced(tmp_path):
    out, stage, new, previous = _publish_setup(tmp_path)
    previous.remove("calibration_ranges.json")  # as if the previous manifest never listed it
    with pytest.raises(ValueError, match="no dualpath manifest"):
        publish(stage, out, previous, {"format": MANIFEST_FORMAT})
    assert (out / "calibration_ranges.json").read_bytes() == PREVIOUS["calibration_ranges.json"]
