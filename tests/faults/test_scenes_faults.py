"""python -m dualpath.scenes {generate, preview, import-objects} and python -m calibration against careless and
unlucky users: every failure exits 2 with one line, loses none of the user's files, leaves nothing half-written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import cv2
import numpy as np
import pytest

from dualpath.scenes import load_dataset
from dualpath.scenes.__main__ import main
from fault_checks import ROOT, default_sigint, error_line, run_module, temporaries

SMALL = {"variants_per_class": 1, "backgrounds_per_kind": 1}  # the real generator with the smallest catalogue


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "small.json"
    path.write_text(json.dumps(SMALL))
    return path


def generate(out, config_file, *extra, n=4):
    return main(["generate", "--n", str(n), "--out", str(out), "--workers", "1", "--quiet", "--config",
                 str(config_file), *map(str, extra)])


@pytest.fixture
def small_set(tmp_path, config_file):
    out = tmp_path / "set"
    assert generate(out, config_file) == 0
    return out


# ------------------------------------------------------------------------------------------------ --overwrite


@pytest.mark.parametrize("contents", [
    {"thesis.txt": "precious"},
    {"thesis.txt": "precious", "manifest.json": "{not json"},
    {"notes/today.md": "precious"},
    {"noisy.npy": "mine, not yours", "thesis.txt": "precious"},
    {"manifest.json": json.dumps({"format": "someone-else", "seed": 0}), "data.csv": "1,2"},
    {"manifest.json": json.dumps([1, 2, 3]), "photo.jpg": "jpeg"},
])
def test_overwrite_never_replaces_a_folder_that_is_not_a_data_set(tmp_path, config_file, capsys, contents):
    user = tmp_path / "userdir"
    for name, text in contents.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    assert generate(user, config_file, "--overwrite") == 2
    line = error_line(capsys.readouterr().err)
    assert "--overwrite only replaces a scenes data set" in line and str(user) in line
    for name, text in contents.items():  # every file as it was
        assert (user / name).read_text() == text
    assert sorted(str(p.relative_to(user)) for p in user.rglob("*") if p.is_file()) == sorted(contents)
    assert not temporaries(tmp_path)


@pytest.mark.parametrize("leftover", [None, "torn-manifest", "arrays-only"])
def test_overwrite_replaces_our_own_data_set_whole_or_torn(small_set, config_file, capsys, leftover):
    if leftover == "torn-manifest":
        (small_set / "manifest.json").write_text('{"format": "dualp')
    elif leftover == "arrays-only":
        (small_set / "manifest.json").unlink()
    assert generate(small_set, config_file, "--overwrite", "--seed", "5") == 0
    assert load_dataset(small_set).seed == 5 and len(load_dataset(small_set)) == 4
    assert not temporaries(small_set.parent)


def test_without_overwrite_a_user_folder_is_refused_untouched(tmp_path, config_file, capsys):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.txt").write_text("precious")
    assert generate(user, config_file) == 2
    assert "not a complete scenes data set" in error_line(capsys.readouterr().err)
    assert [p.name for p in user.iterdir()] == ["thesis.txt"]


# ------------------------------------------------------------------------------------------------ unwritable outputs


@pytest.mark.parametrize("sub", ["ds", "a/b/ds"])
def test_generate_into_a_read_only_folder(readonly_dir, config_file, capsys, sub):
    assert generate(readonly_dir / sub, config_file) == 2
    line = error_line(capsys.readouterr().err)
    assert str(readonly_dir / sub) in line and "choose another --out" in line
    assert list(readonly_dir.iterdir()) == []


def test_generate_onto_a_read_only_mount_point_refuses_before_rendering(readonly_dir, config_file, capsys):
    if not os.path.ismount(readonly_dir):
        pytest.skip("needs the read-only folder to be a mount point")
    t0 = time.perf_counter()
    assert generate(readonly_dir, config_file, n=400) == 2
    assert "mount point" in error_line(capsys.readouterr().err)
    assert time.perf_counter() - t0 < 5  # refused up front, not after rendering 400 scenes
    assert not temporaries(readonly_dir.parent)


@pytest.mark.parametrize("sub", ["", "ds", "a/ds"])
def test_generate_under_a_file(afile, config_file, capsys, sub):
    out = afile / sub if sub else afile
    assert generate(out, config_file) == 2
    line = error_line(capsys.readouterr().err)
    assert str(afile) in line and ("not a folder" in line)
    assert afile.read_text() == "not a folder\n"


@pytest.mark.parametrize("size", ["64k", "256k"])
def test_generate_on_a_full_disk_says_so_and_leaves_nothing(full_disk, config_file, capsys, size):
    disk = full_disk(size)
    assert generate(disk / "ds", config_file, n=200) == 2  # 200 scenes need ~3.6 MB
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: no space left on {disk / 'ds'}")
    assert list(disk.iterdir()) == []


# ------------------------------------------------------------------------------------------------ damaged data sets


@pytest.mark.parametrize("text, what", [
    ("[1, 2, 3]", "JSON array where a JSON object belongs"),
    ('"a string"', "JSON string where a JSON object belongs"),
    ("42", "JSON number where a JSON object belongs"),
    ("null", "JSON null where a JSON object belongs"),
    ("{not json", "Expecting property name"),
    ("", "Expecting value"),
    ("\xff\xfe binary", ""),
])
@pytest.mark.parametrize("command", ["preview", "generate"])
def test_a_manifest_that_is_not_an_object(small_set, config_file, tmp_path, capsys, text, what, command):
    (small_set / "manifest.json").write_bytes(text.encode("latin-1"))
    if command == "preview":
        code = main(["preview", "--data", str(small_set), "--out", str(tmp_path / "p.png")])
    else:
        code = generate(small_set, config_file)
    assert code == 2
    line = error_line(capsys.readouterr().err)
    assert "manifest.json is corrupt" in line and what in line
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("damage", ["no-files", "files-not-object", "entry-missing", "entry-torn", "no-seed"])
def test_a_torn_manifest_is_refused(small_set, tmp_path, capsys, damage):
    manifest = json.loads((small_set / "manifest.json").read_text())
    if damage == "no-files":
        del manifest["files"]
    elif damage == "files-not-object":
        manifest["files"] = ["noisy.npy"]
    elif damage == "entry-missing":
        del manifest["files"]["labels"]
    elif damage == "entry-torn":
        del manifest["files"]["clean"]["sha256"]
    else:
        del manifest["seed"]
    (small_set / "manifest.json").write_text(json.dumps(manifest))
    assert main(["preview", "--data", str(small_set), "--out", str(tmp_path / "p.png")]) == 2
    assert "the folder is corrupt" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "p.png").exists()


@pytest.mark.parametrize("damage, message", [
    ("truncate", "cannot be read"),
    ("garbage", "cannot be read"),
    ("empty", "cannot be read"),
    ("other-shape", "the manifest says"),
    ("flipped-byte", "does not match its sha256"),
    ("missing", "cannot be read"),
])
def test_damaged_arrays_are_refused_on_reuse(small_set, config_file, capsys, damage, message):
    path = small_set / "noisy.npy"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other-shape":
        np.save(path, np.zeros((3, 64, 64, 3), np.uint8))
    elif damage == "flipped-byte":
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        path.unlink()
    assert generate(small_set, config_file) == 2  # the same set asked again: verified, not trusted
    assert message in error_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("content, message", [
    (None, "no --config file at"),
    ("{oops", "is not a SceneConfig JSON file"),
    ("[1, 2]", "is not a SceneConfig JSON file"),
    ('{"image_size": "big"}', ""),
])
def test_bad_config_files(tmp_path, capsys, content, message):
    path = tmp_path / "cfg.json"
    if content is not None:
        path.write_text(content)
    code = main(["generate", "--n", "2", "--out", str(tmp_path / "ds"), "--workers", "1", "--quiet", "--config",
                 str(path)])
    assert code == 2
    assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / "ds").exists() and not temporaries(tmp_path)


@pytest.mark.parametrize("flag, value, message", [("--n", "0", "n must be >= 1"), ("--workers", "0", "workers must be")])
def test_bad_numbers(tmp_path, config_file, capsys, flag, value, message):
    argv = ["generate", "--n", "2", "--out", str(tmp_path / "ds"), "--workers", "1", "--quiet",
            "--config", str(config_file), flag, value]
    assert main(argv) == 2
    assert message in error_line(capsys.readouterr().err)
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------------------------ preview


@pytest.mark.parametrize("case", ["under-a-file", "read-only", "data-missing", "data-is-a-file", "data-empty-folder"])
def test_preview_failures(request, tmp_path, config_file, afile, capsys, case):
    out, data = tmp_path / "p.png", None
    if case == "under-a-file":
        out = afile / "p.png"
    elif case == "read-only":
        out = request.getfixturevalue("readonly_dir") / "p.png"
    elif case == "data-missing":
        data = tmp_path / "nothing"
    elif case == "data-is-a-file":
        data = afile
    else:
        data = tmp_path / "empty"
        data.mkdir()
    argv = ["preview", "--out", str(out), "--count", "2", "--config", str(config_file)]
    assert main(argv + (["--data", str(data)] if data else [])) == 2
    error_line(capsys.readouterr().err)
    assert not out.exists() and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------------------ import-objects


def _photo(path, seed=0):
    image = np.full((120, 160, 3), 225, np.uint8)
    cv2.ellipse(image, (80, 60), (50, 10), 20 + seed, 0, 360, (60, 70, 160), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.mark.parametrize("layout, message", [
    ({"whisk/": None}, "no object imported"),
    ({"whisk/broken.jpg": b"\xff\xd8 not really"}, "no object imported"),
    ({"whisk/notes.txt": b"hello"}, "no object imported"),
    ({"whisk/empty.png": b""}, "no object imported"),
    ({"whisk/broken.jpg": b"junk", "ladle/": None}, "no object imported"),
    ({"holiday/photo.jpg": "photo"}, "no class sub-folder"),
    ({}, "no class sub-folder"),
])
def test_import_objects_refuses_an_empty_bank(tmp_path, capsys, layout, message):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in layout.items():
        path = folder / name
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
        elif data == "photo":
            _photo(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    out = tmp_path / "bank.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped files are warned about as well; the error line is the point
        code = main(["import-objects", str(folder), "--out", str(out)])
    assert code == 2
    line = error_line(capsys.readouterr().err)
    assert message in line
    if message == "no object imported":
        assert "class folder(s)" in line and "skipped" in line
    assert not out.exists() and not temporaries(tmp_path)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    _photo(folder / "whisk" / "a.png")
    return folder


@pytest.mark.parametrize("case", ["read-only", "under-a-file", "is-a-folder", "missing-photos"])
def test_import_objects_output_checked_before_the_work(request, tmp_path, photos, afile, capsys, case):
    out = {"under-a-file": afile / "bank.npz", "is-a-folder": tmp_path, "missing-photos": tmp_path / "bank.npz"}.get(case)
    if case == "read-only":
        out = request.getfixturevalue("readonly_dir") / "bank.npz"
    folder = tmp_path / "no-photos" if case == "missing-photos" else photos
    assert main(["import-objects", str(folder), "--out", str(out)]) == 2
    error_line(capsys.readouterr().err)
    assert not (out.is_file()) and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------------------ calibration


def _calibration(out, n, *extra):
    from calibration.__main__ import main as calibration_main

    return calibration_main(["--out", str(out), "--n", str(n), "--preview", "0", *map(str, extra)])


def test_calibration_suggests_a_flag_it_has_and_the_flag_works(tmp_path, capsys):
    out = tmp_path / "cal"
    assert _calibration(out, 4) == 0
    assert _calibration(out, 6) == 2
    line = error_line(capsys.readouterr().err.replace("\n  ", " ").replace("\nUse", " Use"))
    assert "--overwrite" in line
    assert _calibration(out, 6, "--overwrite") == 0
    assert len(load_dataset(out)) == 6


@pytest.mark.parametrize("case", ["user-folder", "under-a-file", "read-only", "training-seed", "zero"])
def test_calibration_failures(request, tmp_path, afile, capsys, case):
    out, extra = tmp_path / "cal", []
    if case == "user-folder":
        out.mkdir()
        (out / "thesis.txt").write_text("precious")
        extra = ["--overwrite"]
    elif case == "under-a-file":
        out = afile / "cal"
    elif case == "read-only":
        out = request.getfixturevalue("readonly_dir") / "cal"
    elif case == "training-seed":
        extra = ["--seed", "3"]
    code = _calibration(out, 0 if case == "zero" else 4, *extra)
    assert code == 2
    error_line(capsys.readouterr().err)
    if case == "user-folder":
        assert [p.name for p in out.iterdir()] == ["thesis.txt"]
    else:
        assert not (out / "manifest.json").exists()
    assert not temporaries(tmp_path)


# ------------------------------------------------------------------------------------------------ the real entry point


def test_generate_killed_midway_leaves_no_data_set_and_the_next_run_cleans_up(tmp_path, config_file):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "dualpath.scenes", "generate", "--n", "5000", "--out", str(out),
                             "--workers", "1", "--quiet", "--config", str(config_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.tmp-*/noisy.npy")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not out.exists() and list(tmp_path.glob(".ds.tmp-*"))  # only a temporary, which no one takes for a set
    assert generate(out, config_file) == 0
    assert len(load_dataset(out)) == 4 and not list(tmp_path.glob(".ds.tmp-*"))


def test_generate_interrupted_says_so_and_leaves_nothing(tmp_path, config_file):
    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "dualpath.scenes", "generate", "--n", "5000", "--out", str(out),
                             "--workers", "1", "--quiet", "--config", str(config_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.tmp-*/noisy.npy")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err and "nothing half-written" in err
    assert not out.exists() and not list(tmp_path.glob(".ds.tmp-*"))


def test_the_real_command_prints_one_line(tmp_path):
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "thesis.txt").write_text("precious")
    done = run_module("dualpath.scenes", "generate", "--n", "10", "--out", user, "--overwrite", "--quiet")
    assert done.returncode == 2 and (user / "thesis.txt").read_text() == "precious"
    assert error_line(done.stderr) and done.stderr.count("\n") == 1
