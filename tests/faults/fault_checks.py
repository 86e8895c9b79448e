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


def hold_lock(path, what: str = "training", inside: bool = True) -> subprocess.Popen:
    """Another process holding dualpath.files.folder_lock(path) (as a running command does) until it is killed."""
    code = ("import sys, time\nfrom dualpath.files import folder_lock\n"
            "with folder_lock(sys.argv[1], sys.argv[2], inside=sys.argv[3] == '1'):\n"
            "    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path), what, "1" if inside else "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def children(pid: int) -> list[int]:
    """The live (not zombie) child processes of `pid` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state
