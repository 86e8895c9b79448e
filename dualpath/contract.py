"""The one place where training, export and serving agree: labels, image size, normalisation, tensor names.

numpy only. Everything that feeds the model or reads its outputs goes through these constants and
functions, so a change here changes every stage at once (and the ONNX / OpenVINO metadata with it).
"""
from __future__ import annotations

import numpy as np

# The 20 kitchen-utensil classes of the Edinburgh Kitchen Utensil Database, in label-index order.
CLASS_NAMES: tuple[str, ...] = (
    "bottle opener",
    "bread knife",
    "can opener",
    "dessert spoon",
    "dinner fork",
    "dinner knife",
    "fish slice",
    "kitchen knife",
    "ladle",
    "masher",
    "peeler",
    "pizza cutter",
    "potato peeler",
    "serving spoon",
    "soup spoon",
    "spatula",
    "teaspoon",
    "tongs",
    "whisk",
    "wooden spoon",
)
NUM_CLASSES: int = len(CLASS_NAMES)

IMAGE_SIZE: int = 64  # model input and reconstruction are IMAGE_SIZE x IMAGE_SIZE RGB
CHANNELS: int = 3

# ImageNet statistics: the DenseNet paths were pretrained with them (torchvision's weights).
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# Tensor names shared by torch export, ONNX, OpenVINO and TensorRT.
INPUT_NAME: str = "image"  # float32 (N, 3, 64, 64), RGB, normalised with MEAN/STD
OUTPUT_PROBS: str = "probs"  # float32 (N, 20), sigmoid probabilities, one per class
OUTPUT_RECON: str = "recon"  # float32 (N, 3, 64, 64), tanh output in [-1, 1] (RGB)
OUTPUT_NAMES: tuple[str, str] = (OUTPUT_PROBS, OUTPUT_RECON)


def class_index(name: str) -> int:
    """Label index of a class name; accepts '_' or '-' for spaces and any case."""
    key = name.strip().lower().replace("_", " ").replace("-", " ")
    try:
        return CLASS_NAMES.index(key)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; the classes are: {', '.join(CLASS_NAMES)}") from None


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images (N, H, W, 3) or (H, W, 3) at IMAGE_SIZE -> float32 (N, 3, H, W) normalised input."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != CHANNELS:
        raise ValueError(f"expected RGB images shaped (N, H, W, 3), got {images.shape}")
    if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"expected {IMAGE_SIZE}x{IMAGE_SIZE} images, got {images.shape[1]}x{images.shape[2]}; "
            "resize or centre-crop them first"
        )
    x = images.astype(np.float32) / 255.0
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def target_from_clean(clean: np.ndarray) -> np.ndarray:
    """uint8 clean images (N, H, W, 3) -> float32 (N, 3, H, W) reconstruction target in [-1, 1]."""
    x = np.asarray(clean, np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def recon_to_unit(recon: np.ndarray) -> np.ndarray:
    """Model reconstruction (N, 3, H, W) in [-1, 1] -> float32 NHWC in [0, 1], as the image metrics take it."""
    x = (np.asarray(recon, np.float32) + 1.0) * 0.5
    return np.clip(x, 0.0, 1.0).transpose(0, 2, 3, 1)


def recon_to_uint8(recon: np.ndarray) -> np.ndarray:
    """Model reconstruction (N, 3, H, W) in [-1, 1] -> uint8 NHWC RGB images."""
    return np.round(recon_to_unit(recon) * 255.0).astype(np.uint8)
