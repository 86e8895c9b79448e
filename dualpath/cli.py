"""What every `python -m ...` command shares: telemetry off, configs filled from parsed flags, sub-command tables.

Importing this module is what makes a module a command: it turns OpenVINO's, NNCF's and ONNX Runtime's telemetry off
(dualpath.telemetry; DUALPATH_TELEMETRY=1 opts in) before the command imports any of them, so every entry point
(`__main__.py`, export.benchmark, the benchmarks/ scripts) imports it before anything else of ours. Libraries never
import it: runtime.backends.ort switches ONNX Runtime's off itself for users who call load_backend from a script.

Configs are dataclasses validated in their own `__post_init__`; a command's flags are their fields, spelled
`--field-name` (argparse's dest `field_name`). A field holding another config (a dataclass default) is filled from
the flags named `<prefix><its field>`, the prefix being the field's metadata "prefix", else `<field>_`; the names in
its metadata "shared" are read from the command's own unprefixed flags (one --workers for every stage):

    calibration: CalibrationConfig = field(default_factory=CalibrationConfig, metadata={"prefix": "calib_"})
    drift: DriftConfig = field(default_factory=DriftConfig, metadata={"shared": ("workers",)})  # --drift-n, --workers

(Config modules write that metadata themselves rather than import this module, which would switch telemetry off in
every program that merely imports a config.) A package the command needs and this Python lacks ends it with one
line and exit 2 (dualpath.missing), not a traceback. Standard library only (no torch, no numpy): `--help` stays fast.
"""
from __future__ import annotations

import dataclasses
import sys
from types import SimpleNamespace
from typing import Any, Callable, Mapping, Sequence

from dualpath import missing
from dualpath.telemetry import telemetry_off

telemetry_off()  # before the command imports openvino / nncf / onnxruntime (see the docstring)
missing.install()  # a package this Python lacks: one line and exit 2, not a traceback (dualpath.missing)


def default(cls: type, name: str) -> Any:
    """The default of dataclass `cls`'s field `name` (default_factory called); KeyError when it has none."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


def _routes(cls: type, prefix: str, outer: str = "", shared: Sequence[str] = ()):
    """(field, its flag, the prefix of its own fields' flags or None for a plain field) for each field of `cls`."""
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        flag = (outer if f.name in shared else prefix) + f.name
        sub = None
        if dataclasses.is_dataclass(_field_default(cls, f)):
            sub = prefix + f.metadata.get("prefix", f.name + "_")
        yield f, flag, sub


def _field_default(cls: type, f: dataclasses.Field) -> Any:
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        return None
    return default(cls, f.name)


def fill(cls: type, args: Any, prefix: str = "", **overrides: Any) -> Any:
    """An instance of dataclass `cls` from `args` (an argparse Namespace, or any object with attributes): each field
    `f` takes `getattr(args, prefix + f)` when present and not None (else its default); a nested config field (see
    the module's docstring) is filled the same way from its own flags, starting from the parent's default for it,
    unless `args` holds the whole config under the field's own name. `overrides` (field -> value) win. Validation is the
    dataclasses' own; a nested config's ValueError is re-raised naming the flags it was filled from."""
    return cls(**given(cls, args, prefix) | overrides)


def given(cls: type, args: Any, prefix: str = "") -> dict[str, Any]:
    """field -> value for the fields of dataclass `cls` that `args` gives (read as fill() reads them): the changes
    to put on a config that is not the defaults, `dataclasses.replace(preset, **given(cls, args))` (a preset, a run's
    saved config, a --config file)."""
    return {name: value for name, (_, value) in _given(cls, args, prefix, prefix, ()).items()}


def _given(cls: type, args: Any, prefix: str, outer: str, shared: Sequence[str]) -> dict[str, tuple[list[str], Any]]:
    """field -> (the flags it was filled from, its value), for the fields of `cls` that `args` gives."""
    given: dict[str, tuple[list[str], Any]] = {}
    for f, flag, sub in _routes(cls, prefix, outer, shared):
        if getattr(args, flag, None) is not None:
            given[f.name] = ([flag], getattr(args, flag))
        elif sub is not None:
            inner = _given(type(default(cls, f.name)), args, sub, prefix, f.metadata.get("shared", ()))
            if inner:
                given[f.name] = _nested_value(default(cls, f.name), inner)
    return given


def _nested_value(base: Any, inner: dict[str, tuple[list[str], Any]]) -> tuple[list[str], Any]:
    flags = [flag for used, _ in inner.values() for flag in used]
    try:
        return flags, dataclasses.replace(base, **{name: value for name, (_, value) in inner.items()})
    except ValueError as e:
        raise ValueError(f"{e} ({', '.join(flags)})") from None


def flag_names(cls: type, prefix: str = "") -> list[str]:
    """Every flat name fill() reads for `cls` (nested configs' fields under their prefixes), in field order."""
    return list(dict.fromkeys(_flag_names(cls, prefix, prefix, ())))


def _flag_names(cls: type, prefix: str, outer: str, shared: Sequence[str]) -> list[str]:
    names = []
    for f, flag, sub in _routes(cls, prefix, outer, shared):
        if sub is None:
            names.append(flag)
        else:
            names += _flag_names(type(default(cls, f.name)), sub, prefix, f.metadata.get("shared", ()))
    return names


def from_flags(cls: type, flags: Mapping[str, Any]) -> Any:
    """fill() from keyword arguments spelled as the command line's flags (calib_n=16, drift_n=20: what scripts and
    tests write); a name that is no flag of `cls` is a TypeError, as an unknown keyword argument is."""
    unknown = sorted(set(flags) - set(flag_names(cls)) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise TypeError(f"{cls.__name__} has no flag {', '.join(unknown)}")
    return fill(cls, SimpleNamespace(**flags))


def dispatch(argv: list[str] | None, table: Mapping[str, Callable[[list[str]], int]],
             default: Callable[[list[str]], int]) -> int:
    """Run the sub-command argv[0] names in `table` with the rest of argv, else `default` with all of it (a command
    whose plain form takes flags: `python -m train --preset cpu`, `python -m train compare ...`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in table:
        return table[argv[0]](argv[1:])
    return default(argv)


def comma_list(text: str) -> tuple[str, ...]:
    """'u8, s8,' -> ('u8', 's8'): a comma-separated flag's names, blanks dropped."""
    return tuple(s.strip() for s in text.split(",") if s.strip())
