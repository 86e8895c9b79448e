"""dualpath.cli: configs filled from parsed flags (nested ones by prefix), defaults read off the dataclasses,
sub-command tables, and telemetry off on import (standard library only)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dualpath.cli import comma_list, default, dispatch, fill, flag_names, from_flags


@dataclass(frozen=True)
class Stage:
    n: int = 3
    workers: int = 1

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


@dataclass(frozen=True)
class Command:
    out: str
    workers: int = 1
    tags: tuple[str, ...] = field(default_factory=lambda: ("a",))
    stage: Stage = field(default_factory=lambda: Stage(n=5), metadata={"prefix": "st_", "shared": ("workers",)})
    other: Stage = field(default_factory=Stage)  # no metadata: read from other_n, other_workers


def test_default_reads_plain_and_factory_defaults():
    assert default(Command, "workers") == 1 and default(Command, "tags") == ("a",)
    assert default(Command, "stage") == Stage(n=5)
    with pytest.raises(KeyError):
        default(Command, "out")


def test_fill_takes_given_flags_nested_by_prefix_and_keeps_defaults():
    args = argparse.Namespace(out="x", workers=4, tags=None, st_n=None, other_n=2, unrelated=1)
    assert fill(Command, args) == Command(out="x", workers=4, stage=Stage(n=5, workers=4), other=Stage(n=2))
    assert fill(Command, args, workers=9).workers == 9  # overrides win
    assert flag_names(Command) == ["out", "workers", "tags", "st_n", "other_n", "other_workers"]


def test_a_nested_config_error_names_its_flags():
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0 \(st_n\)"):
        fill(Command, argparse.Namespace(out="x", st_n=0))


def test_from_flags_refuses_a_name_that_is_no_flag():
    assert from_flags(Command, {"out": "y", "st_n": 7}).stage == Stage(n=7)
    assert from_flags(Command, {"out": "y", "stage": Stage(n=2)}).stage == Stage(n=2)  # the whole config
    with pytest.raises(TypeError, match="no flag bogus"):
        from_flags(Command, {"out": "y", "bogus": 1})


def test_dispatch_runs_the_named_sub_command_else_the_default():
    calls = []
    table = {"compare": lambda argv: calls.append(("compare", argv)) or 3}
    default_ = lambda argv: calls.append(("main", argv)) or 0  # noqa: E731
    assert dispatch(["compare", "--x"], table, default_) == 3
    assert dispatch(["--preset", "cpu"], table, default_) == 0
    assert dispatch([], table, default_) == 0
    assert calls == [("compare", ["--x"]), ("main", ["--preset", "cpu"]), ("main", [])]


def test_comma_list():
    assert comma_list(" u8, s8,,") == ("u8", "s8") and comma_list("") == ()


def test_importing_it_turns_telemetry_off_and_imports_no_heavy_library():
    probe = ("import os, sys; import dualpath.cli; "
             "print(os.environ.get('ORT_DISABLE_TELEMETRY'), sys.modules.get('openvino_telemetry', 'x'), "
             "any(m in sys.modules for m in ('numpy', 'torch', 'onnxruntime')))")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "None", "False"]
