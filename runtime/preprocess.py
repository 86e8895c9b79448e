"""Camera frame (any size, grey / BGR / BGRA, 8 or 16 bit) -> the model's input, as its metadata says.

    frame --to_bgr--> BGR uint8 --centre_crop--> square (side a multiple of size) --resize(INTER_AREA)--> size x size
          --BGR->RGB--> rgb uint8 (shown in the overlay) --normalise(mean, std)--> float32 (1, 3, size, size)

numpy + OpenCV only. The normalisation does the same arithmetic in the same order as dualpath.contract.preprocess,
so a 64x64 scene fed through here gives the very tensor the model was trained and exported with.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class FrameError(ValueError):
    """A frame that cannot be turned into a model input (empty, wrong shape or dtype)."""


def to_bgr(frame: np.ndarray) -> np.ndarray:
    """Any camera / image frame -> 3-channel uint8 BGR. Grey (H, W) or (H, W, 1), BGR, BGRA; uint8 or uint16."""
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise FrameError("empty frame (the source delivered no pixels)")
    if frame.dtype == np.uint16:
        # 16-bit PNGs and some industrial cameras: keep the top 8 bits, as a display would.
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise FrameError(f"frames must be uint8 or uint16 images, got dtype {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise FrameError(f"frames must be (H, W) grey, (H, W, 3) BGR or (H, W, 4) BGRA, got shape {frame.shape}")


def centre_crop(image: np.ndarray, multiple_of: int = 1) -> np.ndarray:
    """The largest centred square (a view, no copy): the model sees square scenes, so we crop rather than squash.
    With multiple_of=size its side is a multiple of the model size where the frame is at least that big: OpenCV's
    INTER_AREA has a fast path for integer factors (720 -> 64 takes ~4x longer than 704 -> 64), for a view at most
    size - 1 pixels narrower (16 of 720 for a 720p camera)."""
    h, w = image.shape[:2]
    side = min(h, w)
    if side >= multiple_of:
        side -= side % multiple_of
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Square image -> size x size. INTER_AREA when shrinking (no aliasing, and an exact inverse of a nearest-
    neighbour upscale by an integer factor); bilinear for the rare frame smaller than the model input."""
    side = image.shape[0]
    if side == size:
        return image
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


@dataclass(frozen=True)
class Preprocessor:
    """Frame -> (rgb uint8 (size, size, 3), float32 (1, 3, size, size)); built once from the model's metadata."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"image size must be a positive number of pixels, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need one value per RGB channel, got mean={self.mean} std={self.std}")
        if min(self.std) <= 0:
            raise ValueError(f"std values must be > 0, got {self.std}; check the model's metadata")
        object.__setattr__(self, "_mean", np.asarray(self.mean, np.float32).reshape(3, 1, 1))
        object.__setattr__(self, "_std", np.asarray(self.std, np.float32).reshape(3, 1, 1))

    @classmethod
    def from_metadata(cls, metadata) -> "Preprocessor":
        return cls(int(metadata.image_size), tuple(metadata.mean), tuple(metadata.std))

    def model_input(self, frame: np.ndarray) -> np.ndarray:
        """Frame -> the RGB uint8 image the model sees (size x size)."""
        square = resize_square(centre_crop(to_bgr(frame), multiple_of=self.size), self.size)
        return cv2.cvtColor(square, cv2.COLOR_BGR2RGB)

    def normalise(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (size, size, 3) -> float32 (1, 3, size, size); same operations as dualpath.contract.preprocess."""
        # The contract's operations, element by element the same, but in place on one CHW buffer: faster than the
        # NHWC temporaries (broadcasting over a last axis of 3 is numpy's slow case; docs/measurements.md).
        x = np.empty((1, 3, self.size, self.size), np.float32)
        x[0] = rgb.transpose(2, 0, 1)
        np.divide(x, np.float32(255.0), out=x)
        np.subtract(x, self._mean, out=x)
        np.divide(x, self._std, out=x)
        return x

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rgb = self.model_input(frame)
        return rgb, self.normalise(rgb)
