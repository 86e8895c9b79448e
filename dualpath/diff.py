"""One recursive difference of two JSON-like dicts, for the messages that refuse a mismatch: a data set folder that
holds other scenes than asked (dualpath.scenes.dataset) and a run folder whose saved record differs from the
command's (train.experiment). Standard library only."""
from __future__ import annotations

from typing import Any, Collection, Mapping


def differences(a: Mapping[str, Any], b: Mapping[str, Any], line: str = "{key}: {a!r}, {b!r}",
                ignore: Collection[str] = (), prefix: str = "") -> list[str]:
    """One line per key whose values differ, `line` formatted with the dotted key and both values (e.g.
    "{key}: {a!r} on disk, {b!r} asked"), nested dicts walked, keys in sorted order; keys named in `ignore` are
    skipped at every level."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out += differences(va, vb, line, ignore, f"{prefix}{key}.")
        elif va != vb and key not in ignore:
            out.append(line.format(key=prefix + key, a=va, b=vb))
    return out
