"""Atomic artifact writes: every file goes to a temporary name beside its target and is renamed when complete,
so a failed or killed export never leaves a file that looks finished. The writers live in dualpath.files (shared
with the scenes, calibration and training outputs); this module keeps the names export's modules import."""
from __future__ import annotations

from pathlib import Path

from dualpath.files import atomic_path, check_writable, file_sha256, write_json, write_text  # noqa: F401 (re-exported)


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create `folder` if needed once it is known a file can be written there; OutputError (an OSError, one line
    naming the folder) otherwise."""
    folder = check_writable(folder, "into")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
