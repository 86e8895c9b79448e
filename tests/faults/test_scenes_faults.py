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
from pathlib import Path

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
    # Mid-rendering (5000 scenes take ~4 s here). Sent within ~50 ms of the first array file, a SIGINT was lost 5 times
    # in 65 runs (the command then finished, exit 0); 0.5 s later, 0 in 30: a known, unexplained gap (docs/testing.md).
    time.sleep(0.5)
    assert proc.poll() is None, "generation ended before the interrupt: give it more scenes"
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


# ------------------------------------------------------------------------------------------------ issue 19: the user's
# files in a data set folder are kept by --overwrite (only our own files are replaced)


@pytest.mark.parametrize("contents", [
    {"thesis.txt": "precious"},
    {"myrun/notes.md": "precious"},
    {"thesis.txt": "precious", "myrun/notes.md": "mine", ".hidden": "also mine"},
    {"noisy.npy.bak": "a backup", "manifest.json.orig": "{}"},
])
def test_overwrite_keeps_the_users_files_in_a_data_set(small_set, config_file, contents):
    for name, text in contents.items():
        (small_set / name).parent.mkdir(parents=True, exist_ok=True)
        (small_set / name).write_text(text)
    assert generate(small_set, config_file, "--overwrite", "--seed", "5") == 0
    assert load_dataset(small_set).seed == 5
    for name, text in contents.items():
        assert (small_set / name).read_text() == text
    assert not temporaries(small_set.parent) and not list(small_set.parent.glob(".*.lock"))


def test_calibration_overwrite_keeps_the_users_files(tmp_path):
    out = tmp_path / "cal"
    assert _calibration(out, 4) == 0
    (out / "thesis.txt").write_text("precious")
    assert _calibration(out, 6, "--overwrite") == 0
    assert len(load_dataset(out)) == 6 and (out / "thesis.txt").read_text() == "precious"


def test_overwrite_refuses_a_folder_where_our_file_goes_before_rendering(small_set, config_file, capsys):
    (small_set / "preview.png").mkdir()
    (small_set / "preview.png" / "mine.txt").write_text("precious")
    t0 = time.perf_counter()
    assert generate(small_set, config_file, "--overwrite", "--seed", "5", n=2000) == 2
    assert "is a folder where the data set's file goes" in error_line(capsys.readouterr().err)
    assert time.perf_counter() - t0 < 5 and (small_set / "preview.png" / "mine.txt").read_text() == "precious"
    assert load_dataset(small_set).seed == 0


# ------------------------------------------------------------------------------------------------ issue 19: --out LINK


@pytest.mark.parametrize("overwrite", [True, False])
def test_out_a_link_to_a_data_set_is_followed(small_set, config_file, tmp_path, overwrite):
    link = tmp_path / "link"
    link.symlink_to(small_set)
    extra = ["--overwrite", "--seed", "5"] if overwrite else []
    assert generate(link, config_file, *extra) == 0
    assert link.is_symlink() and load_dataset(small_set).seed == (5 if overwrite else 0)
    assert not temporaries(tmp_path)


def test_out_a_link_to_a_file_is_refused_before_rendering(tmp_path, config_file, afile, capsys):
    link = tmp_path / "link"
    link.symlink_to(afile)
    t0 = time.perf_counter()
    assert generate(link, config_file, "--overwrite", n=2000) == 2
    assert "not a folder" in error_line(capsys.readouterr().err)
    assert time.perf_counter() - t0 < 5 and afile.read_text() == "not a folder\n" and link.is_symlink()


def test_out_a_dangling_link_makes_the_set_where_it_points(tmp_path, config_file):
    link, target = tmp_path / "link", tmp_path / "elsewhere" / "ds"
    target.parent.mkdir()
    link.symlink_to(target)
    assert generate(link, config_file) == 0
    assert link.is_symlink() and len(load_dataset(target)) == 4


# ------------------------------------------------------------------------------------------------ issue 19: one writer


@pytest.mark.parametrize("command", ["generate", "generate-overwrite", "calibration", "import-objects"])
def test_a_second_writer_is_refused_with_one_line(tmp_path, config_file, photos, capsys, command):
    from fault_checks import hold_lock

    out = tmp_path / ("bank.npz" if command == "import-objects" else "ds")
    holder = hold_lock(out, "scene generation", inside=False)
    try:
        if command == "generate":
            code = generate(out, config_file)
        elif command == "generate-overwrite":
            code = generate(out, config_file, "--overwrite")
        elif command == "calibration":
            code = _calibration(out, 4)
        else:
            code = main(["import-objects", str(photos), "--out", str(out)])
        assert code == 2
        line = error_line(capsys.readouterr().err)
        assert f"another scene generation (pid {holder.pid}) is writing {out}" in line
        assert "wait for it or choose another --out" in line
        assert not out.exists() and not temporaries(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_a_reader_does_not_reuse_a_set_being_written(small_set, config_file, capsys):
    from fault_checks import hold_lock

    holder = hold_lock(small_set, "scene generation", inside=False)
    try:
        assert generate(small_set, config_file) == 2
        assert f"(pid {holder.pid}) is writing" in error_line(capsys.readouterr().err)
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_writer_does_not_leave_the_lock_held(tmp_path, config_file):
    from fault_checks import hold_lock

    out = tmp_path / "ds"
    holder = hold_lock(out, "scene generation", inside=False)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert list(tmp_path.glob(".ds.lock"))  # the file a killed holder leaves: no lock without its process
    assert generate(out, config_file) == 0 and len(load_dataset(out)) == 4
    assert not list(tmp_path.glob(".ds.lock"))


def test_two_generations_at_once_one_is_refused(tmp_path, config_file):
    out = tmp_path / "ds"
    argv = ["generate", "--n", "3000", "--out", out, "--workers", "1", "--quiet", "--config", config_file]
    first = subprocess.Popen([sys.executable, "-m", "dualpath.scenes", *map(str, argv)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".ds.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_module("dualpath.scenes", *argv[:2], "200", *argv[3:], "--seed", "7")
    first.kill()
    first.communicate()
    assert second.returncode == 2
    assert f"another scene generation (pid {first.pid}) is writing {out}" in error_line(second.stderr)


def test_folder_lock_is_reentrant_and_leaves_nothing(tmp_path):
    from dualpath.files import FolderBusy, folder_lock

    out = tmp_path / "run"
    with folder_lock(out, "training"):
        with folder_lock(out, "training"):  # the same process again (train's CLI, then run_experiment)
            assert (out / ".dualpath.lock").read_text().split() == [str(os.getpid()), "training"]
        assert (out / ".dualpath.lock").exists()
    assert not out.exists()  # created for the lock, removed again when nothing was written
    holder = __import__("fault_checks").hold_lock(out, "pretraining")
    try:
        with pytest.raises(FolderBusy, match=f"another pretraining \\(pid {holder.pid}\\) is writing"):
            with folder_lock(out, "training"):
                pass
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------------ issue 19: sprite banks


def _bank(path, sprites):
    """An object bank .npz with the given {key: array} sprites (import-objects' format)."""
    from dualpath import contract
    from dualpath.scenes.importer import BANK_FORMAT

    np.savez(path, format=np.array(BANK_FORMAT), class_names=np.array(contract.CLASS_NAMES), **sprites)
    return path


def _opaque(h, w, alpha=255):
    rgba = np.full((h, w, 4), 128, np.uint8)
    rgba[..., 3] = alpha
    return rgba


@pytest.mark.parametrize("sprite, message", [
    (_opaque(40, 12, alpha=0), "0 opaque pixel"),  # fully transparent
    (_opaque(1, 1), "1x1 with 1 opaque pixel"),
    (_opaque(3, 3), "3x3 with 9 opaque pixel"),
    (_opaque(40, 12, alpha=100), "0 opaque pixel"),  # faint everywhere: nothing a mask would call the object
    (np.zeros((0, 5, 4), np.uint8), "0 opaque pixel"),
])
def test_a_bank_with_an_invisible_sprite_is_refused(tmp_path, capsys, sprite, message):
    bank = _bank(tmp_path / "bank.npz", {"sprite_03_00000": sprite})
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**SMALL, "object_bank": str(bank)}))
    assert generate(tmp_path / "ds", cfg) == 2
    line = error_line(capsys.readouterr().err)
    assert "sprite_03_00000" in line and str(bank) in line and message in line
    assert not (tmp_path / "ds").exists() and not temporaries(tmp_path)


@pytest.mark.parametrize("key", ["sprite_3_0_x", "sprite_x_00000", "sprite_99_00000", "sprite_03"])
def test_a_bank_with_a_bad_key_is_refused(tmp_path, capsys, key):
    bank = _bank(tmp_path / "bank.npz", {key: _opaque(40, 12)})
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**SMALL, "object_bank": str(bank)}))
    assert generate(tmp_path / "ds", cfg) == 2
    line = error_line(capsys.readouterr().err)
    assert key in line and "not a sprite name" in line and "too many values" not in line
    assert not (tmp_path / "ds").exists()


def test_save_object_bank_refuses_an_invisible_sprite(tmp_path):
    from dualpath.scenes.importer import save_object_bank

    with pytest.raises(ValueError, match="opaque pixel"):
        save_object_bank(tmp_path / "bank.npz", {3: [_opaque(2, 2)]})
    assert not (tmp_path / "bank.npz").exists()


def test_an_object_that_would_hide_another_is_left_out_unlabelled():
    """Object 1 is a small fork; object 2 a sheet larger than the frame, which hides it wherever it goes: object 2 is
    not placed, and the scene labels only what can be seen."""
    from dualpath.scenes import SceneConfig, compose
    from dualpath.scenes.bank import build_bank

    config = SceneConfig(**SMALL)
    real = build_bank(config)
    sheet = compose.Sprite(np.full((600, 600, 4), 255, np.uint8), 600.0 * 600.0)
    sprites = list(real.sprites)
    sprites[1] = (sheet,)
    bank = compose.Bank(tuple(sprites), real.backgrounds, real.lights, real.px_per_cm)
    rng = np.random.default_rng(0)
    objects, classes = compose._place_objects(rng, config, bank, (0, 1))
    assert classes == (0,) and len(objects) == 1
    masks, _, _ = compose._masks_and_boxes(objects, config.render_size, config.image_size)
    assert masks[0].sum() >= 16


def test_every_labelled_object_is_visible_in_crowded_scenes():
    from dualpath.scenes import SceneConfig
    from dualpath.scenes.compose import render_scene
    from dualpath.scenes.importer import MIN_OBJECT_PIXELS

    config = SceneConfig(**SMALL, min_visible=0.99, overlap_p=1.0, cardinality_weights=(0.0, 0.0, 1.0))
    for i in range(60):
        scene = render_scene(config, 3, i)
        assert set(np.flatnonzero(scene.labels)) == set(scene.classes)
        assert (scene.masks.reshape(len(scene.classes), -1).sum(1) >= MIN_OBJECT_PIXELS).all(), i


# ------------------------------------------------------------------------------------------------ issue 19: manifests
# are read against their schema


@pytest.mark.parametrize("field, value, message", [
    ("seed", "0", "seed is '0'"),
    ("n", None, "n is None"),
    ("n", 7, "the manifest's n is 7"),
    ("config", {"no_such_field": 1}, "not a SceneConfig"),
    ("config", [1], "config is [1]"),
    ("files.noisy.shape", "4,64,64,3", "files.noisy.shape"),
    ("files.labels.dtype", "float64", "files.labels.dtype"),
    ("files.clean.sha256", 12, "files.clean.sha256"),
    ("files.boxes.file", "labels.npy", "files.boxes.file"),
    ("statistics", None, "statistics is None"),
    ("statistics.class_counts", [1, 2], "statistics.class_counts"),
])
@pytest.mark.parametrize("command", ["preview", "generate"])
def test_a_manifest_with_a_wrong_field_is_refused(small_set, config_file, tmp_path, capsys, field, value, message,
                                                  command):
    manifest = json.loads((small_set / "manifest.json").read_text())
    *parents, last = field.split(".")
    node = manifest
    for part in parents:
        node = node[part]
    node[last] = value
    (small_set / "manifest.json").write_text(json.dumps(manifest))
    if command == "preview":
        code = main(["preview", "--data", str(small_set), "--out", str(tmp_path / "p.png")])
    else:  # the same data set asked again: its manifest read, not trusted
        code = generate(small_set, config_file)
    assert code == 2
    line = error_line(capsys.readouterr().err)
    # generate compares what makes a data set (seed, n, config) first: those say it is another data set
    identity = command == "generate" and field in ("seed", "n", "config")
    assert ("holds a different data set" in line) if identity else (message in line and "the folder is corrupt" in line)
    assert not (tmp_path / "p.png").exists()


# ------------------------------------------------------------------------------------------------ issue 19: SIGTERM


def _wait_for_workers(proc, count, timeout=90):
    from fault_checks import children

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        workers = [k for k in kids if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text(errors="replace")]
        if len(workers) >= count:
            return kids
        time.sleep(0.1)
    raise AssertionError(f"no {count} workers started")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_generate_with_workers_leaves_no_process_behind(tmp_path, config_file, sig):
    from fault_checks import alive

    out = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-m", "dualpath.scenes", "generate", "--n", "20000", "--out", str(out),
                             "--workers", "2", "--quiet", "--config", str(config_file)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    kids = _wait_for_workers(proc, 2)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15
    assert proc.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines() == ["interrupted: nothing half-written was left behind"]
    deadline = time.monotonic() + 10
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [k for k in kids if alive(k)]  # workers and multiprocessing's resource tracker
    assert not out.exists() and not list(tmp_path.glob(".ds.*"))
