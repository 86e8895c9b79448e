"""Data sets on disk: arrays + manifest, generated in parallel, written atomically, reused when identical.

Layout of a data set folder:
    noisy.npy   uint8 (N, S, S, 3)  model input          clean.npy  uint8 (N, S, S, 3)  reconstruction target
    labels.npy  uint8 (N, 20)       multi-hot            masks.npy  uint8 (N, K, S, S) visible mask per object slot
    objects.npy int8  (N, K)        class per slot, -1   boxes.npy  int16 (N, K, 4)    x0, y0, x1, y1 per slot
    manifest.json  config, seed, n, generator version, inputs' hashes, sha256 of every array, statistics
The folder is built under a temporary name and renamed at the end, so a folder with this name is complete.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from dualpath import contract
from dualpath.diff import differences
from dualpath.files import (check_unlocked, check_writable, file_sha256, folder_lock, inside, interrupts_deferred,
                            process_alive, read_json, writing)
from dualpath.processes import ignore_interrupts_in_worker, stop_pool
from dualpath.scenes.bank import Bank, build_bank, install_bank
from dualpath.scenes.compose import render_scene
from dualpath.scenes.config import GENERATOR_VERSION, SceneConfig

FORMAT = "dualpath-scenes"
FORMAT_VERSION = 1
ARRAYS = ("noisy", "clean", "labels", "masks", "objects", "boxes")
# Every name a data set folder of ours holds (calibration adds a preview): --overwrite replaces only such folders.
OWN_FILES = frozenset({*(f"{name}.npy" for name in ARRAYS), "manifest.json", "preview.png"})
_MAX_CHUNK = 100  # scenes per task handed to a worker (fewer for small data sets, so every worker gets some)


class DatasetError(RuntimeError):
    """A data set folder that cannot be used as asked (incomplete, corrupt or a different data set)."""


@dataclass
class SceneDataset:
    path: Path
    manifest: dict[str, Any]
    noisy: np.ndarray
    clean: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    objects: np.ndarray
    boxes: np.ndarray
    reused: bool = False  # generate_dataset found this exact data set on disk and did not render it again

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def config(self) -> SceneConfig:
        return SceneConfig.from_dict(self.manifest["config"])

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])


def _shapes(config: SceneConfig, n: int) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    s, k = config.image_size, config.max_objects
    return {
        "noisy": ((n, s, s, 3), np.dtype(np.uint8)),
        "clean": ((n, s, s, 3), np.dtype(np.uint8)),
        "labels": ((n, contract.NUM_CLASSES), np.dtype(np.uint8)),
        "masks": ((n, k, s, s), np.dtype(np.uint8)),
        "objects": ((n, k), np.dtype(np.int8)),
        "boxes": ((n, k, 4), np.dtype(np.int16)),
    }


def render_range(config: SceneConfig, seed: int, start: int, stop: int) -> dict[str, np.ndarray]:
    """Scenes start..stop-1 as stacked arrays (the unit of work of one worker task)."""
    n = stop - start
    out = {name: np.zeros(shape, dtype) for name, (shape, dtype) in _shapes(config, n).items()}
    out["objects"][:] = -1
    for j in range(n):
        sc = render_scene(config, seed, start + j)
        k = len(sc.classes)
        out["noisy"][j], out["clean"][j], out["labels"][j] = sc.noisy, sc.clean, sc.labels
        out["masks"][j, :k], out["objects"][j, :k], out["boxes"][j, :k] = sc.masks, sc.classes, sc.boxes
    return out


def _worker_init(config: SceneConfig, bank: Bank) -> None:
    import cv2

    ignore_interrupts_in_worker()  # Ctrl-C reaches the whole process group: the parent ends its workers
    cv2.setNumThreads(1)  # one process per core: OpenCV's own threads would only fight over the same cores
    install_bank(config, bank)


def _task(args: tuple[SceneConfig, int, int, int]) -> tuple[int, dict[str, np.ndarray]]:
    config, seed, start, stop = args
    return start, render_range(config, seed, start, stop)


def scene_pool(config: SceneConfig, workers: int) -> ProcessPoolExecutor:
    """Worker processes ready to render scenes of `config` (each gets the bank this process built)."""
    bank = build_bank(config)  # built once here and sent to the workers, instead of each building its own
    # Fresh interpreters, not fork: a process forked after OpenCV started its thread pool can hang on its locks.
    context = mp.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init, initargs=(config, bank))


def iter_chunks(
    config: SceneConfig, seed: int, n: int, workers: int = 1, chunk: int | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """(start, arrays) for consecutive chunks of scenes 0..n-1, rendered by `workers` processes (or `pool`)."""
    chunk = chunk or max(8, min(_MAX_CHUNK, -(-n // (4 * workers))))
    tasks = [(config, seed, a, min(a + chunk, n)) for a in range(0, n, chunk)]
    if pool is not None:
        yield from pool.map(_task, tasks)
    elif workers <= 1 or len(tasks) <= 1:
        for t in tasks:
            yield _task(t)
    else:
        own = scene_pool(config, workers)
        try:
            with interrupts_deferred():  # workers start here: a signal mid-start would leave one half-started
                results = own.map(_task, tasks)
            yield from results
        except BaseException:  # interrupted (Ctrl-C, SIGTERM), or a failure: no worker outlives the run
            stop_pool(own)
            raise
        own.shutdown(wait=True)


def _inputs_fingerprint(config: SceneConfig) -> dict[str, str]:
    """Hashes of the files a config points at: the same path with other contents is another data set."""
    out = {}
    if config.object_bank is not None:
        out["object_bank_sha256"] = file_sha256(config.object_bank)
    if config.background_dir is not None:
        h = hashlib.sha256()
        for p in sorted(Path(config.background_dir).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(config.background_dir)).encode())
                h.update(file_sha256(p).encode())
        out["background_dir_sha256"] = h.hexdigest()
    return out


def identity(config: SceneConfig, seed: int, n: int) -> dict[str, Any]:
    """What makes two data sets the same: equal identities mean byte-identical arrays."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "seed": int(seed),
        "n": int(n),
        "inputs": _inputs_fingerprint(config),
    }


def cache_tag(config: SceneConfig) -> str:
    """A short name part for cached data sets ("g1.1-3f2a9c01"): the generator version and a hash of the config, so a
    cache made by another generator version or config lives beside the current one instead of being refused."""
    digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    return f"g{GENERATOR_VERSION}-{digest}"


def _read_manifest(path: Path) -> dict[str, Any]:
    return read_json(
        path / "manifest.json", DatasetError,
        missing=f"{path} is not a complete scenes data set (no manifest.json). Data sets are written under a temporary "
        "name and renamed when complete, so this folder was made some other way: remove it or choose another --out.",
        corrupt=f"{path}/manifest.json is corrupt ({{error}}); delete the folder and generate it again",
        expect=dict,
    )


def _sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def _statistics(labels: np.ndarray) -> dict[str, Any]:
    per_class = labels.sum(0)
    card = np.bincount(labels.sum(1), minlength=4)[1:]
    return {
        "class_counts": dict(zip(contract.CLASS_NAMES, per_class.tolist())),
        "cardinality_counts": {str(k + 1): int(c) for k, c in enumerate(card)},
    }


def _remove_stale_temporaries(out: Path) -> None:
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def generate_dataset(
    config: SceneConfig,
    seed: int,
    n: int,
    out: str | Path,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    what: str = "scene generation",
    wait: bool = False,
) -> SceneDataset:
    """Generate scenes 0..n-1 of (config, seed) into `out`, or reuse it if it already holds exactly that data set.

    One writer at a time (dualpath.files.folder_lock beside `out`; `what` names this writer to a second one, which
    gets FolderBusy, or with `wait` waits and then reuses what the first one made). A symbolic link `out` is
    followed: the data set is written where it points. --overwrite replaces only our own files in a data set folder
    (the arrays, manifest.json, preview.png) and keeps everything else there.

    With workers > 1 the scenes are rendered in fresh worker processes ("spawn"), so a script that calls this needs
    the usual `if __name__ == "__main__":` guard around its entry point.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = _resolve_link(Path(out))
    wanted = identity(config, seed, n)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} exists and is not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        if not wait:
            check_unlocked(out, inside=False)
            return _reuse(out, wanted)  # reading only: a set in a read-only place is still a good set
        with contextlib.suppress(OSError):
            with folder_lock(out, what, inside=False, wait=True):
                pass  # the writer (if any) is done
        return _reuse(out, wanted)
    check_writable(out, "folder")
    with folder_lock(out, what, inside=False, wait=wait), writing(out):
        if out.exists() and any(out.iterdir()):  # a writer we waited for may have made it meanwhile
            if not overwrite:
                return _reuse(out, wanted)
            _check_ours(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        return _generate(config, seed, n, out, wanted, workers, progress)


def _resolve_link(out: Path) -> Path:
    """Where a symbolic link `out` points (decided before any work: the data set is written there)."""
    if not out.is_symlink():
        return out
    target = Path(os.path.realpath(out))
    if target.exists() and not target.is_dir():
        raise DatasetError(f"{out} is a link to {target}, which is not a folder; choose another --out")
    return target


def _reuse(out: Path, wanted: dict[str, Any]) -> SceneDataset:
    on_disk = _read_manifest(out)
    diffs = differences({k: on_disk.get(k) for k in wanted}, wanted, line="{key}: {a!r} on disk, {b!r} asked")
    if diffs:
        raise DatasetError(
            f"{out} holds a different data set:\n  " + "\n  ".join(diffs[:12])
            + "\nUse another --out, or --overwrite to replace it."
        )
    ds = load_dataset(out)
    ds.reused = True
    return ds


def _check_ours(out: Path) -> None:
    """--overwrite replaces a scenes data set (its manifest says so, or it holds only our file names), never a
    folder of other files; in a data set folder it replaces only our own files (OWN_FILES) and keeps the rest."""
    try:
        ours = _read_manifest(out).get("format") == FORMAT
    except DatasetError:
        ours = False
    others = sorted(p.name for p in out.iterdir() if p.name not in OWN_FILES)
    if not ours and others:
        raise DatasetError(
            f"--overwrite only replaces a scenes data set, and {out} is not one (no dualpath manifest.json; it holds "
            f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): nothing was changed; choose another --out"
        )
    blocked = sorted(name for name in OWN_FILES if (out / name).is_dir())
    if blocked:
        raise DatasetError(f"{out}/{blocked[0]} is a folder where the data set's file goes: nothing was changed; "
                           "move it away or choose another --out")


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished data set in `tmp` to `out`: a rename when `out` is new; into an existing folder, our own
    files only (manifest.json removed first and written last, so the folder never looks complete half-way), and
    every other file there is kept."""
    if not out.exists():
        os.replace(tmp, out)
        return
    (out / "manifest.json").unlink(missing_ok=True)
    (out / "preview.png").unlink(missing_ok=True)  # a preview of the previous set (calibration writes one)
    for name in sorted(OWN_FILES - {"manifest.json"}):
        if (tmp / name).exists():
            os.replace(tmp / name, out / name)
    os.replace(tmp / "manifest.json", out / "manifest.json")
    shutil.rmtree(tmp, ignore_errors=True)


def _generate(config: SceneConfig, seed: int, n: int, out: Path, wanted: dict[str, Any], workers: int,
              progress: bool) -> SceneDataset:
    _remove_stale_temporaries(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        t0 = time.perf_counter()
        arrays = {name: _open_array(tmp / f"{name}.npy", shape, dtype) for name, (shape, dtype) in _shapes(config, n).items()}
        bar = _progress_bar(n, progress)
        chunks = iter_chunks(config, seed, n, workers)
        try:
            for start, chunk in chunks:
                for name, a in chunk.items():
                    arrays[name][start : start + len(a)] = a
                bar.update(len(chunk["labels"]))
        finally:
            chunks.close()  # interrupted here: the workers are stopped now, not when the generator is collected
        bar.close()
        seconds = time.perf_counter() - t0
        manifest = dict(wanted)
        manifest["class_names"] = list(contract.CLASS_NAMES)
        manifest["files"] = {
            name: {"file": f"{name}.npy", "shape": list(a.shape), "dtype": str(a.dtype), "sha256": _sha256_array(a)}
            for name, a in arrays.items()
        }
        manifest["statistics"] = _statistics(np.asarray(arrays["labels"]))
        manifest["generation"] = {"seconds": round(seconds, 3), "workers": workers, "scenes_per_second": round(n / seconds, 1)}
        for a in arrays.values():
            a.flush()
        del arrays
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_dataset(out, verify=False)


def _open_array(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> np.memmap:
    """A writable .npy memmap whose blocks are reserved now: a full disk raises ENOSPC here, before any rendering,
    instead of a SIGBUS when a page of the map is first written."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    if hasattr(os, "posix_fallocate"):  # Linux; elsewhere a full disk is found when the pages are written
        with open(path, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.path.getsize(path))
    return array


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="scene", desc="generating scenes", disable=not enabled, smoothing=0.1)


def load_dataset(path: str | Path, verify: bool = True, mmap: bool = False) -> SceneDataset:
    """Open a data set folder; with verify, check every array against the manifest's sha256."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(
            f"no scenes data set at {path}; make one with `python -m dualpath.scenes generate --out {path}`"
        )
    manifest = _read_manifest(path)
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a scenes data set (format {manifest.get('format')!r})")
    check_manifest(path, manifest)
    arrays = {}
    for name in ARRAYS:
        info = _file_entry(path, manifest, name)
        try:
            a = np.load(path / info["file"], mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DatasetError(f"{path}/{info['file']} cannot be read ({e}); generate the data set again") from None
        if list(a.shape) != list(info["shape"]) or str(a.dtype) != info["dtype"]:
            raise DatasetError(
                f"{path}/{info['file']} is {a.dtype}{list(a.shape)}, the manifest says {info['dtype']}{info['shape']}; "
                "the folder is corrupt: generate it again"
            )
        if verify and _sha256_array(a) != info["sha256"]:
            raise DatasetError(f"{path}/{info['file']} does not match its sha256 in the manifest: generate it again")
        arrays[name] = a
    return SceneDataset(path=path, manifest=manifest, **arrays)


def _file_entry(path: Path, manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """The manifest's record of array `name` (file, shape, dtype, sha256), or a DatasetError for a torn manifest."""
    info = manifest.get("files", {}).get(name) if isinstance(manifest.get("files"), dict) else None
    if not isinstance(info, dict) or not {"file", "shape", "dtype", "sha256"} <= set(info):
        raise DatasetError(f"{path}/manifest.json has no complete record of {name}.npy: the folder is corrupt; "
                           "generate it again")
    try:  # a name read from the manifest: inside the folder, links included (dualpath.files.inside)
        inside(path, info["file"], f"{path}/manifest.json's {name} file")
    except ValueError as e:
        raise DatasetError(str(e)) from None
    return info


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """A data set manifest against its schema (what load_dataset and generate read from it): DatasetError naming the
    first field that is missing or of the wrong type."""
    def bad(field: str, why: str) -> DatasetError:
        shown = repr(value)[:60] if (value := _lookup(manifest, field)) is not _MISSING else "missing"
        return DatasetError(f"{path}/manifest.json: {field} is {shown} ({why}); the folder is corrupt: generate it again")

    for field in ("seed", "n"):
        if not _integer(manifest.get(field)):
            raise bad(field, "an integer belongs there")
    if not isinstance(manifest.get("config"), dict):
        raise bad("config", "a SceneConfig object belongs there")
    try:
        SceneConfig.from_dict(manifest["config"])
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise bad("config", f"not a SceneConfig: {e}") from None
    n = manifest["n"]
    for name in ARRAYS:
        info = _file_entry(path, manifest, name)
        where = f"files.{name}"
        if info["file"] != f"{name}.npy":
            raise bad(f"{where}.file", f"this array's file is {name}.npy, inside the folder")
        shape = info["shape"]
        if not isinstance(shape, list) or not shape or not all(_integer(d) and d >= 0 for d in shape):
            raise bad(f"{where}.shape", "a list of sizes belongs there")
        if shape[0] != n:
            raise bad(f"{where}.shape", f"{shape[0]} scenes, the manifest's n is {n}")
        dtype = str(_shapes(SceneConfig(), 1)[name][1])
        if info["dtype"] != dtype:
            raise bad(f"{where}.dtype", f"this array is {dtype}")
        digest = info["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise bad(f"{where}.sha256", "a sha256 hex digest belongs there")
    stats = manifest.get("statistics")
    if not isinstance(stats, dict):
        raise bad("statistics", "an object belongs there")
    for key in ("class_counts", "cardinality_counts"):
        counts = stats.get(key)
        if not isinstance(counts, dict) or not counts or not all(_integer(v) for v in counts.values()):
            raise bad(f"statistics.{key}", "an object of counts belongs there")


_MISSING = object()


def _lookup(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data
