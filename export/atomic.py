"""Atomic artifact writes: every file goes to a temporary name beside its target and is renamed when complete,
so a failed or killed export never leaves a file that looks finished."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dualpath.files import atomic_path, file_sha256  # noqa: F401  (re-exported for export's modules)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")




def ensure_writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed and prove a file can be written there; a clear error otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"cannot write to the output folder {folder} ({e.strerror}); choose another --out") from None
    return folder
