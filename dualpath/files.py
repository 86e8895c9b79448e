"""Files every stage writes: atomic writes (temporary name, rename when complete) and the hashes manifests record.
Standard library only."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that pick a format by suffix still work);
    on success rename it onto `path`, on failure remove it. A killed writer never leaves a file that looks complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path, error: type[Exception], missing: str, corrupt: str) -> Any:
    """The parsed JSON file at `path`. A missing file raises error(missing); a file that is not JSON raises
    error(corrupt), where "{error}" in `corrupt` becomes the parser's message. Both say what to do next."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(missing) from None
    except json.JSONDecodeError as e:
        raise error(corrupt.replace("{error}", str(e))) from None
