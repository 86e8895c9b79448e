import os

import pytest

from dualpath.files import read_json


def test_read_json_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, ValueError, missing="nope", corrupt="bad") == {"a": [1, 2]}
    with pytest.raises(KeyError, match="no file here"):
        read_json(tmp_path / "none.json", KeyError, missing="no file here", corrupt="bad")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"^broken\.json is corrupt \(Expecting property name.*\); redo it$"):
        read_json(broken, ValueError, missing="nope", corrupt="broken.json is corrupt ({error}); redo it")


def test_read_json_can_insist_on_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2, 3]")
    assert read_json(path, ValueError, missing="nope", corrupt="bad") == [1, 2, 3]
    with pytest.raises(ValueError, match=r"^list\.json: a JSON array where a JSON object belongs; redo it$"):
        read_json(path, ValueError, missing="nope", corrupt="list.json: {error}; redo it", expect=dict)


@pytest.mark.parametrize("kind, make, message", [
    ("into", "file", "exists and is not a folder"),
    ("folder", "file", "exists and is not a folder"),
    ("file", "folder", "is a folder, and a file is to be written there"),
    ("file", "under-a-file", "is a file, not a folder"),
    ("into", "under-a-file", "is a file, not a folder"),
])
def test_check_writable_refuses_the_wrong_kind_of_path_and_creates_nothing(tmp_path, kind, make, message):
    from dualpath.files import OutputError, check_writable

    blocker = tmp_path / "x"
    if make == "folder":
        blocker.mkdir()
    else:
        blocker.write_text("")
    target = blocker / "out" if make == "under-a-file" else blocker
    with pytest.raises(OutputError, match=message):
        check_writable(target, kind)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    assert check_writable(tmp_path / "new" / "deeper", kind) == tmp_path / "new" / "deeper"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # checked, not created


def test_a_full_disk_inside_atomic_path_names_the_target(tmp_path):
    import errno

    from dualpath.files import OutputError, atomic_path

    with pytest.raises(OutputError, match=r"^no space left on .*model\.bin: free some space or choose another --out$"):
        with atomic_path(tmp_path / "model.bin") as tmp:
            tmp.write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):  # other errors pass through as they are
        with atomic_path(tmp_path / "model.bin"):
            raise FileNotFoundError(2, "input gone")


def test_atomic_path_clears_what_killed_writers_left(tmp_path):
    import subprocess
    import sys

    from dualpath.files import atomic_path

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".best.tmp{int(dead.stdout)}.pt"
    stale.write_bytes(b"torn")
    live = tmp_path / f".best.tmp{os.getppid()}.pt"  # a writer still running: left alone
    live.write_bytes(b"busy")
    other = tmp_path / f".last.tmp{int(dead.stdout)}.pt"  # another file's temporary: its own writer clears it
    other.write_bytes(b"torn")
    with atomic_path(tmp_path / "best.pt") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best.pt", live.name, other.name])


def test_remove_stale_temporaries_clears_a_folder_of_dead_writers_only(tmp_path):
    import subprocess
    import sys

    from dualpath.files import remove_stale_temporaries

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    (tmp_path / "fold0").mkdir()
    for name in (f"fold0/.best.tmp{dead}.pt", f".metrics.tmp{dead}.json", f".notes.tmp{os.getppid()}.txt",
                 ".tmp-keep", "best.pt", f".data.tmp-{dead}"):
        (tmp_path / name).write_text("x")
    remove_stale_temporaries(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted([".tmp-keep", "best.pt", f".data.tmp-{dead}", f".notes.tmp{os.getppid()}.txt"])


def test_interrupts_inside_a_deferred_block_arrive_when_it_ends():
    import signal

    from dualpath.files import interrupts_deferred

    # Python's own Ctrl-C handler, whatever this process inherited (a background job starts with SIGINT ignored)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    steps = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("finished the write")  # not cut short
        steps.append("never")
    assert steps == ["finished the write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the program's handler is back
    signal.signal(signal.SIGINT, inherited)
