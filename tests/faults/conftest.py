"""Shared by the fault suite: one tiny trained + exported model for the whole session, mounts for read-only and
full disks (skipped with a message where mounting is not permitted), and the checks every case makes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fault_checks import train_argv

N_SCENES = 60


# ------------------------------------------------------------------------------------------------ disks


def _mount(target: Path, options: str) -> bool:
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    return done.returncode == 0


def _umount(target: Path) -> None:
    if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """An empty folder no file can be written into: a read-only tmpfs (root), else chmod 555 (other users; root
    ignores permissions, so without mounts those cases are skipped)."""
    folder = tmp_path / "rofs"
    folder.mkdir()
    if _mount(folder, "ro,size=1m"):
        yield folder
        _umount(folder)
    elif os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    else:
        pytest.skip("read-only cases need `mount -t tmpfs` (root allowed to mount), which this machine does not permit")


@pytest.fixture
def full_disk(tmp_path):
    """make(size) -> an empty folder on a tmpfs of that size ("64k", "1m"); unmounted after the test."""
    mounted = []

    def make(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if not _mount(folder, f"size={size}"):
            pytest.skip("full-disk cases need `mount -t tmpfs` (root allowed to mount), which this machine does not permit")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        _umount(folder)


@pytest.fixture
def afile(tmp_path) -> Path:
    """A plain file where a folder is expected."""
    path = tmp_path / "afile"
    path.write_text("not a folder\n")
    return path


# ------------------------------------------------------------------------------------------------ one tiny model


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A real 60-scene data set (the training distribution)."""
    from dualpath.scenes import SceneConfig, generate_dataset

    out = tmp_path_factory.mktemp("faults-data") / "scenes"
    return generate_dataset(SceneConfig(), seed=0, n=N_SCENES, out=out, workers=1, progress=False)


@pytest.fixture(scope="session")
def trained(dataset, tmp_path_factory) -> Path:
    """One finished `python -m train --preset tiny` run folder (read only by the tests)."""
    pytest.importorskip("torch")
    from train.cli import main

    out = tmp_path_factory.mktemp("faults-run") / "tiny"
    assert main(train_argv(dataset.path, out)) == 0
    return out


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory) -> Path:
    """That run's best.pt exported to ONNX FP32 (`python -m export --backends onnx`): the export folder."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from export.__main__ import main

    out = tmp_path_factory.mktemp("faults-export") / "export"
    code = main(["--checkpoint", str(trained / "best.pt"), "--out", str(out), "--backends", "onnx", "--threads", "1",
                 "--data-root", str(tmp_path_factory.mktemp("faults-export-data"))])
    assert code == 0 and (out / "model_fp32.onnx").is_file()
    return out


@pytest.fixture(scope="session")
def onnx_model(exported) -> Path:
    return exported / "model_fp32.onnx"
