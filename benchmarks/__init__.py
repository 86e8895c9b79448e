"""Scripts that measure speed and print/save a table (docs/design.md), each run from the repository root as
`python -m benchmarks.<name>` (the Makefile's bench, bench-inference, recipe, gpu-check and demo targets do).
Nothing in the project imports them. Importing the package is importing dualpath.cli first, which turns the
libraries' telemetry off before any benchmark imports them (as every command does)."""
from __future__ import annotations

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)

import dualpath.cli  # noqa: F401  (telemetry off: see the docstring)

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def run_module(module: str, args: list[str]) -> subprocess.CompletedProcess:
    """`python -m module args` in a fresh interpreter (its output captured as text), with the repository on its
    path wherever the caller runs from: the benchmarks time or train each row in a process of its own."""
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env)


def save_results(out: Path, data: dict) -> int:
    """A benchmark's JSON results file, written atomically (its folder made), then one line saying where it is:
    exitcodes.OK, or BAD_INPUT after one `error:` line when it cannot be written (nothing half-written is left)."""
    from dualpath import exitcodes
    from dualpath.files import OutputError, write_json

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, data)
    except OSError as e:
        print(f"error: {e if isinstance(e, OutputError) else f'cannot write {out}: {e}'}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    print(f"results: {out}")
    return exitcodes.OK


def measure_and_save(out: Path, title: str, measure: Callable[[], dict], table: Callable[[dict], list[str]],
                     errors: tuple[type[BaseException], ...]) -> int:
    """A study's main once its flags are read: `title` and the machine's headline, measure() (one of `errors`: one
    `error:` line and exitcodes.BAD_INPUT), its table printed, and the results with the machine saved to `out`."""
    from dualpath import exitcodes
    from dualpath.machine import describe, headline

    machine = describe()
    print(f"{title}; {headline(machine)}")
    try:
        result = measure()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return exitcodes.BAD_INPUT
    for line in table(result):
        print(line)
    return save_results(out, {**result, "machine": machine})
