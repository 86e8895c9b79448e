"""Files every stage writes: atomic writes (temporary name, rename when complete), the checks that an output can be
written before any work starts, one-line errors for full or read-only disks, and the hashes manifests record.
Standard library only."""
from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

# errno -> why a write failed, as the one line says it ({path} is the output being written)
_WRITE_ERRORS = {
    errno.ENOSPC: "no space left on {path}: free some space or choose another --out",
    errno.EDQUOT: "no space left on {path} (disk quota): free some space or choose another --out",
    errno.EROFS: "cannot write {path}: read-only file system; choose another --out",
    errno.EACCES: "cannot write {path}: permission denied; choose another --out",
    errno.EPERM: "cannot write {path}: operation not permitted; choose another --out",
}


class OutputError(OSError):
    """An output that cannot be written (full or read-only disk, no permission, a file where a folder must be).
    str() is one line naming the path and what to do."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:
        return str(self.args[0])


def output_error(err: OSError, path: str | Path) -> OSError:
    """`err` as an OutputError naming `path` when it says the disk is full or not writable; else `err` itself."""
    if isinstance(err, OutputError) or err.errno not in _WRITE_ERRORS:
        return err
    return OutputError(_WRITE_ERRORS[err.errno].format(path=path), err.errno)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn a full / read-only disk or a permission error raised inside into an OutputError naming `path`."""
    try:
        yield
    except OSError as err:
        new = output_error(err, path)
        if new is err:
            raise
        raise new from None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that pick a format by suffix still work);
    on success rename it onto `path`, on failure remove it. A killed writer never leaves a file that looks complete;
    a full or read-only disk raises OutputError("no space left on <path>" ...)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    _remove_stale_temporaries(path)
    try:
        with writing(path):
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.tmp(?P<pid>\d+)(?P<suffix>\.[^.]*)?$")  # atomic_path's names


def _remove_stale_temporaries(path: Path) -> None:
    """Temporaries of `path` left by writers that were killed (kill -9, power loss): their process is gone."""
    for tmp in path.parent.glob(f".{glob.escape(path.stem)}.tmp*{glob.escape(path.suffix)}"):
        _remove_if_stale(tmp, path.stem, path.suffix)


def remove_stale_temporaries(folder: str | Path) -> None:
    """Every atomic_path temporary under `folder` whose writer is gone (e.g. before a run folder is resumed)."""
    for tmp in Path(folder).rglob(".*.tmp*"):
        _remove_if_stale(tmp)


def _remove_if_stale(tmp: Path, stem: str | None = None, suffix: str | None = None) -> None:
    match = _TEMPORARY.match(tmp.name)
    if match is None or not tmp.is_file() or (stem is not None and match["stem"] != stem):
        return
    if (suffix is not None and (match["suffix"] or "") != suffix) or process_alive(int(match["pid"])):
        return
    tmp.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# ------------------------------------------------------------------------------------------------ one writer per output

LOCK_NAME = ".dualpath.lock"  # inside a folder that files are written into (a run folder, an export)
_HELD: dict[str, int] = {}  # lock files this process holds -> how many `with folder_lock` hold each


class FolderBusy(OutputError):
    """Another live process is writing the same output (str(): one line naming it and what to do)."""


def lock_path(path: str | Path, inside: bool = True) -> Path:
    """The lock file of output `path`: inside it (a folder written into), or beside it as `.NAME.lock` (a folder or
    file replaced as a whole by a rename in its parent, where a file inside would be replaced with it)."""
    path = Path(os.path.abspath(path))
    return path / LOCK_NAME if inside else path.parent / f".{path.name}.lock"


def _busy(path: Path, lock: Path, flag: str) -> FolderBusy:
    holder = ""
    for _ in range(20):  # the holder writes its pid just after taking the lock
        with contextlib.suppress(OSError):
            holder = lock.read_text().strip()
        if holder:
            break
        threading.Event().wait(0.01)
    pid, _, what = holder.partition(" ")
    who = f"another {what or 'process'} (pid {pid})" if pid.isdigit() else "another process"
    return FolderBusy(f"{who} is writing {path}; wait for it or choose another {flag}")


@contextlib.contextmanager
def folder_lock(path: str | Path, what: str, inside: bool = True, flag: str = "--out",
                wait: bool = False) -> Iterator[Path]:
    """Hold the one-writer lock of output `path` (a folder, or with inside=False a folder or file replaced whole)
    while the block runs. A second writer gets FolderBusy: "another <what> (pid N) is writing <path>; wait for it or
    choose another --out" (wait=True: it waits instead). The lock is an flock on a small file that records the
    holder's pid: the kernel drops it when the process ends, however it ends (kill -9 included), so a killed writer
    never leaves it held; the file is removed on the way out. Re-entrant within a process. Creates `path` (inside)
    when missing, and removes it again when it is still empty at the end."""
    import fcntl

    path = Path(path)
    lock = lock_path(path, inside)
    key = str(lock)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield lock
        finally:
            _HELD[key] -= 1
        return
    created = inside and not path.exists()
    with writing(path):
        lock.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                raise _busy(path, lock, flag) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the file may have been removed by the holder we waited for: lock the file that is there now
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {what}\n".encode())
    _HELD[key] = 1
    try:
        yield lock
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)  # before the lock goes: a waiter then finds the file gone and takes a fresh one
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: a command refused before it wrote anything leaves no folder


def check_unlocked(path: str | Path, inside: bool = True, flag: str = "--out") -> None:
    """FolderBusy when another process holds folder_lock(path) (for readers that must not read half a write)."""
    import fcntl

    path = Path(path)
    lock = lock_path(path, inside)
    if str(lock) in _HELD:
        return
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return  # no lock file: no writer
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(path, lock, flag) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM that arrive inside are raised when it ends, to the handlers the program had. For
    writers that C code calls back (torch.save): a KeyboardInterrupt raised inside such a callback is lost, or tears
    the file, or aborts the process; once the file is whole it is clean. Main thread only (where handlers run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    """Write `data` as JSON to `path` atomically (numpy scalars and paths become plain values)."""
    return write_text(path, json.dumps(data, indent=indent, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def check_writable(path: str | Path, kind: str, flag: str = "--out") -> Path:
    """Raise OutputError (one line naming the path and `flag`) unless `path` can be written, before any work starts.

    kind "into": a folder that files are written into (created if missing); "folder" / "file": a folder / file that is
    created or replaced as a whole by a rename in its parent (so it cannot be a mount point). Creates nothing."""
    if kind not in ("into", "folder", "file"):
        raise ValueError(f"kind must be 'into', 'folder' or 'file', got {kind!r}")
    path = Path(path)
    if path.exists():
        _check_kind(path, kind, flag)
    probe_in = path if kind == "into" and path.is_dir() else _deepest_existing(path.parent)
    if not probe_in.is_dir():
        raise OutputError(f"cannot write {path}: {probe_in} is a file, not a folder; choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=probe_in)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise OutputError(f"cannot write {path}: {reason} in {probe_in}; choose another {flag}", err.errno) from None
    return path


def _check_kind(path: Path, kind: str, flag: str) -> None:
    if kind == "file" and path.is_dir():
        raise OutputError(f"{path} is a folder, and a file is to be written there; choose another {flag}")
    if kind != "file" and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder; choose another {flag}")
    if kind != "into" and os.path.ismount(path):
        raise OutputError(f"{path} is a mount point, which cannot be replaced; write into a folder inside it "
                          f"(e.g. {flag} {path / 'out'})")


def _deepest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | Path, error: type[Exception], missing: str, corrupt: str, expect: type | None = None) -> Any:
    """The parsed JSON file at `path`. A missing file raises error(missing); a file that is not JSON, or (with
    `expect`, e.g. dict) whose top level is not of that type, raises error(corrupt), where "{error}" in `corrupt`
    becomes what is wrong. Both say what to do next."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(missing) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(corrupt.replace("{error}", str(e))) from None
    if expect is not None and not isinstance(data, expect):
        found = f"a JSON {_JSON_NAMES.get(type(data), type(data).__name__)} where a JSON {_JSON_NAMES[expect]} belongs"
        raise error(corrupt.replace("{error}", found))
    return data


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


# ------------------------------------------------------------------------------------------------ outputs vs inputs


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths `a` and `b` name one file: the same inode where both exist (hard links, symlinks, `./x` vs `x`,
    case-insensitive file systems), else the same resolved path (symlinks in the folders followed), so an output that
    does not exist yet is compared too."""
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _paths(value: Any) -> list[Path]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, os.PathLike)):
        return [Path(value)]
    return [Path(v) for v in value if v is not None and v != ""]


def refuse_output_over_input(outputs: dict[str, Any], inputs: dict[str, Any],
                             error: type[Exception] = OutputError) -> None:
    """Raise `error` (one line naming the path, both roles and what to do) when a file a command writes is also a file
    it reads, or when two outputs are one file. Rule: no command writes over a file it reads.

    outputs / inputs: {role: a path, several paths, or None (not given)}, where a role is how the user named it
    ("--save", "--model", "the model's weights file"). Paths are compared resolved, links and hard links included
    (same_file). Call it before any work starts, before any output is opened."""
    seen: list[tuple[str, Path]] = []
    for role, value in outputs.items():
        for out in _paths(value):
            for in_role, in_value in inputs.items():
                for path in _paths(in_value):
                    if same_file(out, path):
                        what = f"{in_role} {path}" if Path(path) != out else in_role
                        raise error(f"{role} {out} is also {what}, which this command reads: writing it would destroy "
                                    f"it; choose another {role.split()[0] if role.startswith('--') else 'output'}")
            for other_role, other in seen:
                if same_file(out, other):
                    raise error(f"{role} {out} and {other_role} {other} are the same file; give each output its own "
                                "path")
            seen.append((role, out))


def inside(folder: str | Path, name: Any, what: str = "a path") -> Path:
    """`folder / name` for a relative `name` read from a file (a manifest's file list, a report's folder): resolved,
    links included, it must lie inside `folder` (resolved too), or ValueError names it. `what` says where the name
    was read ("manifest.json's files"). Returns the path under `folder` as given (not resolved)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{what} holds {name!r}, which is not a file name inside {folder}; fix or remove that entry")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{what} names {name!r}, which lies outside {folder}; a name there must be relative to "
                         "it and stay inside: fix or remove that entry")
    base = Path(folder).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"{what} names {name!r}, which leads out of {folder} (through a link, to {target}); "
                         "fix or remove that entry, or remove the link")
    return Path(folder) / relative
