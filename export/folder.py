"""The export folder holds exactly what its manifest lists.

An export is built in a hidden staging folder inside --out and published at the end: the files a previous dualpath
manifest listed are removed (never anything else), the new files are moved in, and manifest.json is written last.
A folder that holds files named like ours that no dualpath manifest lists (someone's own files, or an export of an
older version) is refused before any work is done. A failed export leaves the previous one as it was.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

from dualpath.files import file_sha256, read_json

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dualpath-export/1"
STAGE_PREFIX = ".dualpath-export-stage-"
# Names an export writes at the top of its folder (and everything under drift/).
OURS = re.compile(r"(model_.*|metadata\.json|calibration_ranges.*\.json|build_tensorrt_engine\..*|tensorrt\.cache|"
                  r"benchmark\.(md|json))")


def previous_files(out: Path) -> list[str]:
    """The files the previous export's manifest lists (relative names, each inside `out`); [] for a new folder.
    ValueError when the folder holds a foreign manifest, or files of ours that no manifest lists."""
    manifest_path = out / MANIFEST
    listed: list[str] = []
    if manifest_path.exists():
        manifest = read_json(manifest_path, ValueError, missing="",
                             corrupt=f"{manifest_path} is not valid JSON ({{error}}); remove it or choose another --out")
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{manifest_path} is not a dualpath export manifest; choose another --out")
        listed = [name for name in manifest.get("files", {}) if _inside(out, name)]
    unlisted = sorted(name for name in our_names(out) if name not in listed)
    if unlisted:
        shown = ", ".join(unlisted[:4]) + (f" and {len(unlisted) - 4} more" if len(unlisted) > 4 else "")
        raise ValueError(f"{out} holds {shown}, which no dualpath manifest there lists; remove them or choose "
                         "another --out (export only replaces files its own manifest listed)")
    return listed


def our_names(out: Path) -> list[str]:
    """Files in `out` named like an export's (top-level artifacts and anything under drift/)."""
    names = [p.name for p in out.iterdir() if p.is_file() and OURS.fullmatch(p.name)] if out.is_dir() else []
    drift = out / "drift"
    if drift.is_dir():
        names += [str(p.relative_to(out)) for p in drift.rglob("*") if p.is_file()]
    return names


def _inside(out: Path, name: str) -> bool:
    path = Path(name)
    return not path.is_absolute() and ".." not in path.parts and name != MANIFEST


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh hidden folder inside `out` (same file system: publishing is renames); removed afterwards. Stage
    folders of killed exports (their process gone) are removed first."""
    for old in out.glob(STAGE_PREFIX + "*"):
        pid = old.name[len(STAGE_PREFIX):]
        if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    stage = out / f"{STAGE_PREFIX}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` (relative name -> sha256, bytes), the manifest itself and hidden files left out."""
    return {str(p.relative_to(folder)): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def publish(stage: Path, out: Path, previous: list[str], manifest: dict[str, Any]) -> None:
    """Replace the previous export in `out` by the staged one: the previous manifest's files go (only those), the
    staged files move in, manifest.json (listing exactly the staged files) is written last."""
    from export.atomic import write_json

    manifest["files"] = file_table(stage)
    for name in previous:
        if name not in manifest["files"]:
            (out / name).unlink(missing_ok=True)
    _remove_empty_dirs(out / "drift")
    for name in manifest["files"]:
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / name, target)
    write_json(out / MANIFEST, manifest)


def _remove_empty_dirs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
