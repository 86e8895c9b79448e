"""The interface every backend implements (Polygraphy's runner idea: load, infer(feed) -> dict, close)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.backends.metadata import MetadataError, ModelMetadata


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

    def _check_feed(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The one input as a contiguous float32 NCHW array, or a ValueError that says what was expected."""
        name, size = self.metadata.input_name, self.metadata.image_size
        if set(feed) != {name}:
            raise ValueError(f"{self.path.name} takes one input {name!r}, got {sorted(feed)}")
        x = np.ascontiguousarray(feed[name], dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (3, size, size):
            raise ValueError(f"input {name!r} must be float32 (N, 3, {size}, {size}), got {x.shape}")
        return x
