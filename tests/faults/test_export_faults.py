"""python -m export refuses checkpoints it cannot trust and outputs it cannot write: exit 2, one line, no artifacts."""
from __future__ import annotations

import os
import pickle

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from export.__main__ import main  # noqa: E402
from fault_checks import error_line, temporaries  # noqa: E402


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/dualpath-fault-pwned",))


def _checkpoint(kind, trained, path):
    good = (trained / "best.pt").read_bytes()
    if kind == "missing":
        return path
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "pickle":
        path.write_bytes(pickle.dumps(_Evil()))
    elif kind == "torch-list":
        torch.save([1, 2, 3], path)
    elif kind == "other-format":
        torch.save({"format_version": 99, "model": {}}, path)
    elif kind == "a-folder":
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["missing", "empty", "random", "truncated", "pickle", "torch-list", "other-format",
                                  "a-folder"])
def test_checkpoints_that_cannot_be_trusted(trained, tmp_path, capsys, kind):
    ckpt = _checkpoint(kind, trained, tmp_path / "best.pt")
    out = tmp_path / "export"
    assert main(["--checkpoint", str(ckpt), "--out", str(out), "--backends", "onnx", "--threads", "1",
                 "--data-root", str(tmp_path / "data")]) == 2
    line = error_line(capsys.readouterr().err)
    assert str(ckpt) in line or "checkpoint" in line
    assert not (out / "manifest.json").exists() and not list(out.glob("*.onnx")) and not temporaries(tmp_path)
    assert not os.path.exists("/tmp/dualpath-fault-pwned")


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_unwritable_export_folder(request, trained, tmp_path, afile, capsys, where):
    out = afile / "export" if where == "under-a-file" else request.getfixturevalue("readonly_dir") / "export"
    assert main(["--checkpoint", str(trained / "best.pt"), "--out", str(out), "--backends", "onnx", "--threads", "1",
                 "--data-root", str(tmp_path / "data")]) == 2
    assert "choose another --out" in error_line(capsys.readouterr().err)
    assert not out.exists()
