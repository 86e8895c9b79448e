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

from dualpath.files import OutputError, file_sha256, inside, interrupts_deferred, output_error, read_json
from export.artifacts import FORMATS

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dualpath-export/1"
STAGE_PREFIX = ".dualpath-export-stage-"
# Names an export writes at the top of its folder (and everything under drift/): the formats' own files too.
OURS = re.compile(r"(model_.*|metadata\.json|calibration_ranges.*\.json|benchmark\.(md|json)|"
                  + "|".join(re.escape(name) for f in FORMATS.values() for name in f.files) + ")")


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
        files = manifest.get("files", {})
        if not isinstance(files, dict):
            raise ValueError(f"{manifest_path}: files is not a JSON object of file names; remove the manifest (and the "
                             "files it listed) or choose another --out")
        listed = [name for name in files if _inside(out, name, f"{manifest_path}'s files")]
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
    if drift.is_dir() and not drift.is_symlink():  # a link or a file there: check_publishable says what is wrong
        names += [str(p.relative_to(out)) for p in drift.rglob("*") if p.is_file()]
    return names


def _inside(out: Path, name: str, what: str) -> bool:
    """Whether `name` (from a manifest) is a file of the export: a path that resolves inside `out`, links included
    (dualpath.files.inside; ValueError otherwise), and not the manifest itself."""
    inside(out, name, what)
    return name != MANIFEST


def planned_names(config) -> list[str]:
    """The names an export with `config` (an ExportConfig) will publish, as far as they are known before any work:
    its artifacts (an IR's .bin too), the files beside them and a drift report folder per compared artifact."""
    names = ["metadata.json", "benchmark.md", "benchmark.json"]
    if config.int8:
        names += ["calibration_ranges.json", "calibration_ranges_shared_concat.json"]
    for a in config.artifacts.values():
        names += [a.name] + ([a.name[:-4] + ".bin"] if a.name.endswith(".xml") else [])
        names += FORMATS[a.format].files
        if a.reference:
            names.append(f"drift/{a.name.replace('.', '_')}/drift.json")
    return list(dict.fromkeys(names))


def check_publishable(out: Path, names, previous=()) -> None:
    """Everything publishing will touch must be usable before anything is touched: each name (new files and the
    previous export's) resolves inside `out`; every folder on the way (drift/, drift/<artifact>/) is a folder, or
    absent, on `out`'s file system (publishing is renames, which cannot cross file systems); no name is a folder.
    ValueError (one line naming the path and what to do) otherwise."""
    out = Path(out)
    device = os.stat(out).st_dev
    for name in dict.fromkeys([*names, *previous, MANIFEST]):
        path = inside(out, name, f"the export's file {name}")
        parts = Path(name).parts
        for depth in range(1, len(parts)):
            folder = out.joinpath(*parts[:depth])
            if not folder.exists() and not folder.is_symlink():
                break
            if not folder.is_dir():
                raise ValueError(f"{folder} is a file where the export writes a folder; remove or rename it, or choose "
                                 "another --out")
            if os.stat(folder).st_dev != device:
                raise ValueError(f"{folder} is on another file system than {out} (a mount or a link), so the export "
                                 "cannot be published there all at once; make it a plain folder, or choose another --out")
        if path.is_dir():
            raise ValueError(f"{path} is a folder where the export writes a file; remove or rename it, or choose "
                             "another --out")
        if name not in previous and name != MANIFEST and (path.is_file() or path.is_symlink()):
            raise ValueError(f"{out} holds {name}, which no dualpath manifest there lists; remove it or choose another "
                             "--out (export only replaces files its own manifest listed)")


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


BACKUP = ".previous"  # inside the stage folder: the previous export's files while the new ones move in


def publish(stage: Path, out: Path, previous: list[str], manifest: dict[str, Any]) -> None:
    """Replace the previous export in `out` by the staged one, all or nothing: the previous manifest's files (only
    those) and any file in the way move aside into the stage folder, the staged files move in, manifest.json (listing
    exactly the staged files) is written last. A failure on the way moves everything back: the previous export is
    as it was, and OutputError says what failed in one line. Ctrl-C / SIGTERM take effect once it is done."""
    from export.atomic import write_json

    manifest["files"] = file_table(stage)
    new = list(manifest["files"])
    check_publishable(out, new, previous)  # nothing is touched yet
    backup = stage / BACKUP
    moved_aside: list[str] = []
    moved_in: list[str] = []
    made: list[Path] = []
    with interrupts_deferred():
        try:
            for name in dict.fromkeys([*previous, *new]):
                target = out / name
                if target.is_file() or target.is_symlink():
                    _makedirs((backup / name).parent, made=None)
                    os.replace(target, backup / name)
                    moved_aside.append(name)
            for name in new:
                _makedirs((out / name).parent, made=made)
                os.replace(stage / name, out / name)
                moved_in.append(name)
            write_json(out / MANIFEST, manifest)
        except (OSError, ValueError) as err:
            failed = _roll_back(stage, out, backup, moved_in, moved_aside, made)
            err = output_error(err, out) if isinstance(err, OSError) else err
            reason = str(err) if isinstance(err, OutputError) else (getattr(err, "strerror", None) or str(err))
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            state = ("the previous export is as it was" if not failed else
                     f"{len(failed)} previous files could not be put back ({', '.join(failed[:3])}), they are in {backup}")
            raise OutputError(f"cannot publish the export into {out}: {reason}{where}; {state}; fix that and export "
                              "again, or choose another --out", getattr(err, "errno", None)) from None
    _remove_empty_dirs(out / "drift")


def _makedirs(folder: Path, made: list[Path] | None) -> None:
    """mkdir -p, recording (in `made`) the folders it created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir()
        if made is not None:
            made.append(d)


def _roll_back(stage: Path, out: Path, backup: Path, moved_in: list[str], moved_aside: list[str],
               made: list[Path]) -> list[str]:
    """Undo a publish that failed midway; the previous files that could not be put back."""
    for name in reversed(moved_in):
        with contextlib.suppress(OSError):
            os.replace(out / name, stage / name)
    failed = []
    for name in reversed(moved_aside):
        try:
            os.replace(backup / name, out / name)
        except OSError:
            failed.append(name)
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()
    return failed


def _remove_empty_dirs(folder: Path) -> None:
    if not folder.is_dir():
        return
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()
