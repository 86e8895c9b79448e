"""A command run by a Python that lacks a package it needs: one line naming the package and what to do, exit 2, never
a traceback (dualpath.missing); every entry point of the project, with the packages made unimportable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dualpath import exitcodes, missing

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = ("numpy", "cv2", "torch", "torchvision", "onnx", "onnxruntime", "openvino", "nncf", "tensorrt", "tqdm",
           "matplotlib", "sklearn")

# Installed as sitecustomize.py on PYTHONPATH: the packages named in $BLOCKED_PACKAGES cannot be imported in that
# interpreter, as if this Python had never installed them.
BLOCKER = """
import os, sys
BLOCKED = tuple(os.environ["BLOCKED_PACKAGES"].split(","))
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Blocker())
"""


def entry_points() -> list[str]:
    """Every `python -m` module of the project: the tracked .py files that run something as __main__."""
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    modules = []
    for rel in files.split():
        if rel.startswith("tests/") or '__name__ == "__main__"' not in (ROOT / rel).read_text():
            continue
        module = rel[:-3].replace("/", ".")
        modules.append(module[:-len(".__main__")] if module.endswith(".__main__") else module)
    return sorted(modules)


@pytest.fixture(scope="module")
def bare_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("bare")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), BLOCKED_PACKAGES=",".join(BLOCKED))
    env.pop("PYTHONFAULTHANDLER", None)
    return env


def run(args: list[str], env: dict[str, str], blocked: tuple[str, ...] = BLOCKED) -> subprocess.CompletedProcess:
    env = dict(env, BLOCKED_PACKAGES=",".join(blocked))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_blocker_blocks(bare_env):
    r = run(["-c", "import numpy"], bare_env)
    assert r.returncode == 1 and "ModuleNotFoundError" in r.stderr  # no command: Python's own traceback


def test_entry_points_found():
    found = entry_points()
    assert {"train", "export", "runtime", "runtime.drift", "calibration", "export.benchmark"} <= set(found)
    assert len(found) >= 20


@pytest.mark.parametrize("module", entry_points())
def test_every_command_without_its_packages_says_so_in_one_line(module, bare_env):
    r = run(["-m", module, "--help"], bare_env)
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.returncode in (exitcodes.OK, exitcodes.BAD_INPUT), (r.returncode, r.stderr[-2000:])
    if r.returncode == exitcodes.BAD_INPUT and "needs" in r.stderr:
        line = r.stderr.strip().splitlines()[-1]
        assert line.startswith(f"error: python -m {module} needs "), line
        package = line.split(" needs ", 1)[1].split(" ", 1)[0]
        assert package in BLOCKED, line
        assert "make setup" in line or "pip install" in line, line


@pytest.mark.parametrize("args, package", [
    (["-m", "train", "pretrain", "--help"], "torch"),  # imported lazily, after the arguments are read
    (["-m", "export", "--help"], "numpy"),  # imported by the export package's __init__, before the command runs
    (["-m", "runtime", "--help"], "cv2"),
])
def test_named_package_and_exit_2(args, package, bare_env):
    r = run(args, bare_env, blocked=(package,))
    assert r.returncode == exitcodes.BAD_INPUT, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr  # one line
    assert r.stderr.startswith(f"error: python -m {args[1]} needs {package} (pip: "), r.stderr


def test_a_missing_module_of_the_project_is_a_bug_and_keeps_its_traceback(bare_env):
    r = run(["-c", "import dualpath.cli; import train.no_such_module"], bare_env)
    assert r.returncode == 1 and "Traceback" in r.stderr and "train.no_such_module" in r.stderr


def test_atexit_handlers_still_run(bare_env):
    code = "import atexit, dualpath.cli; atexit.register(lambda: print('cleaned up', flush=True)); import torch"
    r = run(["-c", code], bare_env)
    assert r.returncode == exitcodes.BAD_INPUT and r.stdout == "cleaned up\n", (r.stdout, r.stderr)
    assert r.stderr.startswith("error: this command needs torch"), r.stderr


def test_other_errors_keep_python_s_own_report(bare_env):
    r = run(["-c", "import dualpath.cli; raise KeyError('x')"], bare_env)
    assert r.returncode == 1 and "KeyError" in r.stderr and "Traceback" in r.stderr


def test_message_says_what_to_do(tmp_path):
    root = Path(missing.__file__).resolve().parents[1]
    outside = missing.message("torch", "python -m train", python="/usr/bin/python3", prefix="/usr")
    assert outside == ("error: python -m train needs torch (pip: torch==2.14.1, the project's `train` extra), which "
                       "this Python (/usr/bin/python3) does not have: run `make setup` and use .venv/bin/python (or "
                       "`. .venv/bin/activate`)")
    inside = missing.message("openvino", "python -m export", python="x", prefix=str(root / ".venv"))
    assert inside.endswith("pip install -e '.[runtime]'")
    core = missing.message("cv2", "python -m runtime", python="x", prefix=str(root / ".venv"))
    assert "opencv-python-headless, a core dependency" in core and core.endswith("pip install 'opencv-python-headless'")
    unknown = missing.message("yaml", "python -m x", python="x", prefix=str(root / ".venv"))
    assert unknown.endswith("pip install 'yaml'")


def test_third_party():
    assert missing.third_party(ModuleNotFoundError("x", name="torch.nn")) == "torch"
    assert missing.third_party(ModuleNotFoundError("x", name="export.nope")) is None
    assert missing.third_party(ModuleNotFoundError("x")) is None
    assert missing.third_party(ImportError("x", name="torch")) is None  # a broken install, not a missing one


@pytest.mark.parametrize("argv, name", [
    (["python", "-m", "train", "--preset", "cpu"], "python -m train"),
    (["python", "-u", "-mexport"], "python -m export"),
    (["python", "-X", "dev", "tools/x.py"], "python tools/x.py"),
    (["python", "-c", "import x"], "this command"),
])
def test_command_name(argv, name):
    assert missing.command_name(argv) == name
