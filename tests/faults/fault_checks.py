"""What every fault case checks, and how it runs a command as a user does (imported by the fault tests)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def error_line(text: str) -> str:
    """The one line of a failure: no traceback, exactly one line starting with 'error', and it says something."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error")]
    assert len(lines) == 1, f"expected one error line, got:\n{text}"
    assert len(lines[0]) > len("error: ") + 10, lines[0]
    return lines[0]


def temporaries(folder: Path) -> list[str]:
    """Files or folders a writer leaves under a temporary name (.x.tmpPID.suffix, .x.tmp-PID, .write-test-*)."""
    if not folder.exists():
        return []
    return [str(p) for p in folder.rglob("*") if ".tmp" in p.name or p.name.startswith(".write-test")]


def run_module(module: str, *args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """`python -m module args` as a user runs it (the real entry point, stdout and stderr as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def train_argv(data, out, *extra) -> list[str]:
    """`python -m train` arguments for the tiny preset on a given data set, on one CPU thread, quiet."""
    return ["--preset", "tiny", "--data", str(data), "--out", str(out), "--device", "cpu", "--threads", "1", "--quiet",
            *map(str, extra)]


def default_sigint() -> None:
    """Popen preexec_fn: Ctrl-C as a terminal delivers it. A process started with SIGINT ignored (a background job of a
    non-interactive shell, as CI may run us) passes that on, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
