"""The interface every backend implements (Polygraphy's runner idea: load, infer(feed) -> dict, close), and beside
infer its async surface: a backend with an async path defines runner(requests, batch) -> runtime.backends.runner.Runner
(several requests in flight); runtime.backends.runner.runner_for gives one that lacks it a synchronous Runner."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from dualpath import contract
from dualpath.machine import cpu_flags

from runtime.backends.metadata import MetadataError, ModelMetadata


log = logging.getLogger("runtime")
# x86 instructions that add u8 x s8 products in 32 bits (no int16 saturation on 8-bit weights)
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def saturation_note(metadata: ModelMetadata, path: Path, flags: set[str] | None) -> str | None:
    """A warning where an INT8 model with 8-bit weights runs on an x86 CPU without VNNI or AMX: there u8 x s8 kernels
    add pairs of products in int16 (AVX2's vpmaddubsw), which 8-bit weights can saturate, so its drift report,
    measured on a CPU with VNNI, may not hold here. None where nothing is at risk."""
    if flags is None or metadata.extra.get("int8_weight_bits") != 8 or flags & set(INT8_DOT_FLAGS):
        return None
    return (f"{path.name} has 8-bit INT8 weights and this CPU has no VNNI or AMX: its u8 x s8 products can saturate "
            f"here, so the export's drift figures may not hold; for this CPU export with --u8-weights 7")


class BackendError(RuntimeError):
    """A model that cannot be run as asked: missing file, wrong type, backend not installed, bad metadata."""


class Backend:
    name: str = ""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metadata: ModelMetadata  # set by the subclass from the artifact's own metadata

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def _read_metadata(self, props: dict[str, str]) -> ModelMetadata:
        try:
            return ModelMetadata.from_props(props, source=str(self.path))
        except MetadataError as e:
            raise BackendError(str(e)) from None

    def _warn_if_int8_may_saturate(self) -> None:
        """For backends running on this machine's CPU: saturation_note as a warning."""
        note = saturation_note(self.metadata, self.path, cpu_flags())  # module-level name: tests replace it
        if note:
            log.warning(note)

    def _check_signature(self, inputs: dict[str, tuple], outputs: dict[str, tuple]) -> None:
        """Refuse a model whose tensors are not the ones its metadata describes (e.g. another model carrying copied
        dualpath metadata). Shapes as the file declares them: ints, or None / names for dynamic dimensions."""
        m = self.metadata
        wanted_in = {m.input_name: (None, 3, m.image_size, m.image_size)}
        wanted_out = {contract.OUTPUT_PROBS: (None, len(m.class_names)),
                      contract.OUTPUT_RECON: (None, 3, m.image_size, m.image_size)}
        problems = _mismatches("input", inputs, wanted_in) + _mismatches("output", outputs, wanted_out)
        if problems:
            raise BackendError(
                f"{self.path} is not the model its dualpath metadata describes ({'; '.join(problems)}): "
                "run a model written by `python -m export`"
            )

    def _check_feed(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The one input as a contiguous float32 NCHW array, or a ValueError that says what was expected."""
        name, size = self.metadata.input_name, self.metadata.image_size
        if set(feed) != {name}:
            raise ValueError(f"{self.path.name} takes one input {name!r}, got {sorted(feed)}")
        x = np.ascontiguousarray(feed[name], dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, size, size):
            raise ValueError(f"input {name!r} must be float32 (N, 3, {size}, {size}), got {x.shape}")
        return x


def _mismatches(kind: str, found: dict[str, tuple], wanted: dict[str, tuple]) -> list[str]:
    problems = []
    for name, shape in wanted.items():
        if name not in found:
            problems.append(f"no {kind} {name!r} (it has {', '.join(map(repr, found)) or 'none'})")
        elif not _shape_fits(found[name], shape):
            problems.append(f"{kind} {name!r} has shape {_shape_text(found[name])}, the metadata needs {_shape_text(shape)}")
    return problems


def _shape_fits(found: tuple, wanted: tuple) -> bool:
    """Same rank, and equal wherever both dimensions are fixed numbers (dynamic ones fit anything; a shape the file
    does not declare at all, None, fits too)."""
    if found is None:
        return True
    if len(found) != len(wanted):
        return False
    return all(not isinstance(f, int) or w is None or f == w for f, w in zip(found, wanted))


def _shape_text(shape: tuple) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else "N" for d in shape) + "]"
