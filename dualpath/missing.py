"""A command run by a Python that lacks one of the project's packages says so in one line and exits 2.

`python -m train` started by the system's Python rather than the project's `.venv`, or `python -m export` on a
machine set up with the runtime's packages only, used to end in a ModuleNotFoundError traceback and exit 1, the code
of a verdict. Importing dualpath.cli (every command does, first) calls install(): an uncaught ModuleNotFoundError of
a third-party package then prints

    error: python -m train needs torch (pip: torch==2.14.1, the project's `train` extra), which this Python
    (/usr/bin/python3) does not have: run `make setup` and use .venv/bin/python (or `. .venv/bin/activate`)

and the process exits 2 (exitcodes.BAD_INPUT) once its atexit handlers have run. Every top-level package's
__init__ calls install_for_python_m() first, for the imports `python -m` makes before the command's module runs.
A missing module of the project's own packages is a bug, not the environment: its traceback is left as it is.
Standard library only.
"""
from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

from dualpath import exitcodes

OWN_PACKAGES = ("dualpath", "train", "export", "runtime", "calibration", "benchmarks", "tools", "jetson", "tests")

# import name -> (what pip installs, the pyproject.toml extra that holds it; "" for the core dependencies)
PACKAGES: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", ""),
    "cv2": ("opencv-python-headless", ""),
    "tqdm": ("tqdm", ""),
    "matplotlib": ("matplotlib", ""),
    "torch": ("torch==2.14.1", "train"),
    "torchvision": ("torchvision==0.29.1", "train"),
    "sklearn": ("scikit-learn", "train"),
    "iterstrat": ("iterative-stratification", "train"),
    "onnx": ("onnx", "export"),
    "onnxscript": ("onnxscript", "export"),
    "onnxslim": ("onnxslim", "export"),
    "nncf": ("nncf", "export"),
    "onnxruntime": ("onnxruntime", "runtime"),
    "openvino": ("openvino", "runtime"),
    "tensorrt": ("tensorrt", "tensorrt"),
    "cuda": ("cuda-python", "tensorrt"),
    "skimage": ("scikit-image", "dev"),
    "mlcm": ("mlcm", "dev"),
    "pytest": ("pytest", "dev"),
}

_state = {"installed": False, "exit_code": None}


def third_party(e: BaseException) -> str | None:
    """The top-level name of the package a ModuleNotFoundError lacks, when it is not one of the project's own."""
    if not isinstance(e, ModuleNotFoundError) or not e.name:
        return None
    top = e.name.split(".")[0]
    return None if top in OWN_PACKAGES else top


def message(package: str, command: str, python: str | None = None, prefix: str | None = None) -> str:
    """The one line for a `command` that needs `package`, run by `python` (sys.executable) of environment `prefix`."""
    python = python or sys.executable
    prefix = prefix or sys.prefix
    pip, extra = PACKAGES.get(package, (package, ""))
    where = f"the project's `{extra}` extra" if extra else "a core dependency of the project"
    root = Path(__file__).resolve().parent.parent
    in_venv = Path(prefix).resolve() == (root / ".venv").resolve()
    if in_venv or not (root / "pyproject.toml").exists():
        todo = f"pip install -e '.[{extra}]'" if extra and in_venv else f"pip install '{pip}'"
    else:
        todo = "run `make setup` and use .venv/bin/python (or `. .venv/bin/activate`)"
    return (f"error: {command} needs {package} (pip: {pip}, {where}), which this Python ({python}) does not have: "
            f"{todo}")


def command_name(orig_argv: list[str] | None = None) -> str:
    """How the user started this process: `python -m train` (also while -m is still importing the packages, when
    sys.argv[0] is "-m"), `python script.py`, else "this command"."""
    argv = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-m" and i + 1 < len(argv):
            return f"python -m {argv[i + 1]}"
        if arg.startswith("-m") and len(arg) > 2:
            return f"python -m {arg[2:]}"
        if arg.startswith("-c") or arg == "-":
            break
        if not arg.startswith("-"):
            return f"python {arg}"
        i += 2 if arg in ("-X", "-W") else 1  # the interpreter's options that take a value
    return "this command"


def _hook(kind, value, tb) -> None:
    package = third_party(value)
    if package is None:
        _previous(kind, value, tb)
        return
    print(message(package, command_name()), file=sys.stderr)
    _state["exit_code"] = exitcodes.BAD_INPUT


def _exit_with_code() -> None:
    """Registered first, so it runs last of the atexit handlers: the interpreter would exit 1 after an uncaught
    exception; a missing package is the environment's fault (2)."""
    if _state["exit_code"] is not None:
        if "logging" in sys.modules:  # its own atexit handler was registered earlier, so it would run after this one
            sys.modules["logging"].shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(_state["exit_code"])


_previous = sys.__excepthook__


def install_for_python_m() -> None:
    """install() while `python -m` imports a command's packages (sys.argv[0] is "-m" then, as Python documents): every
    top-level package's __init__ calls this first, because a package __init__ that imports numpy, cv2 or torch (export,
    calibration, runtime.drift) runs before the command's own dualpath.cli import. A library user's `import export`
    installs nothing."""
    if sys.argv[:1] == ["-m"]:
        install()


def install() -> None:
    """Turn an uncaught ModuleNotFoundError of a third-party package into one line and exit code 2 (idempotent)."""
    global _previous
    if _state["installed"]:
        return
    _previous = sys.excepthook
    sys.excepthook = _hook
    atexit.register(_exit_with_code)
    _state["installed"] = True
