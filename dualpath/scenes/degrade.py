"""Image degradation: low light, blur, sensor noise, optional motion blur and JPEG (paper IV.A).

Pure function of (clean image, DegradeConfig, rng): uint8 RGB in, uint8 RGB of the same size out; the steps in
between work in float32 on a 0-1 intensity scale.
"""
from __future__ import annotations

import cv2
import numpy as np

from dualpath.scenes.config import DegradeConfig


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    size = int(np.ceil(length)) | 1  # odd size so the kernel is centred
    k = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(np.deg2rad(angle_deg)), np.sin(np.deg2rad(angle_deg))
    half = (length - 1) / 2
    cv2.line(k, (round(c - dx * half), round(c - dy * half)), (round(c + dx * half), round(c + dy * half)), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def degrade(clean: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB clean image -> uint8 RGB degraded image of the same size.

    Every random draw happens whatever the severity, so a scene's other randomness does not shift when the
    severity changes: the same scene at severities 0, 1 and 2 shows the same objects, only more degraded.
    """
    s = cfg.severity
    brightness = 1.0 - s * (1.0 - _uniform(rng, cfg.brightness))
    gamma = 1.0 + s * (_uniform(rng, cfg.gamma) - 1.0)
    sigma = s * _uniform(rng, cfg.blur_sigma)
    noise_std = s * _uniform(rng, cfg.noise_std)
    shot = s * _uniform(rng, cfg.shot_noise)
    motion = rng.random() < cfg.motion_blur_p
    motion_len = max(1.0, s * _uniform(rng, cfg.motion_blur_length))
    motion_angle = rng.uniform(0.0, 180.0)
    jpeg = rng.random() < cfg.jpeg_p
    quality = int(round(100 - s * (100 - _uniform(rng, cfg.jpeg_quality))))
    # OpenCV's normal generator is faster than numpy's here (docs/measurements.md); seeded from the scene's own stream
    # it stays a pure function of the scene (cv2's generator state is per thread, and is set right before use).
    cv2.setRNGSeed(int(rng.integers(1, 2**31)))
    noise = np.empty(clean.shape, np.float32)
    cv2.randn(noise, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    # Low light as a tone curve on the 256 possible values: one table look-up instead of a power per pixel.
    curve = np.power(np.arange(256, dtype=np.float32) / 255, np.float32(gamma)) * np.float32(max(brightness, 0.02))
    x = cv2.LUT(clean, curve)
    if sigma > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    if motion and motion_len > 1.5:
        x = cv2.filter2D(x, -1, _motion_kernel(motion_len, motion_angle), borderType=cv2.BORDER_REFLECT)
    if shot > 0:  # sensor noise: a constant floor plus shot noise growing with the square root of the signal
        amp = cv2.sqrt(x)  # x >= 0: a tone curve of non-negative values, blurred
        amp *= np.float32(shot)
        amp += np.float32(noise_std)
        noise *= amp
    else:
        noise *= np.float32(noise_std)
    x += noise
    np.maximum(x, 0.0, out=x)
    out = cv2.convertScaleAbs(x, alpha=255.0)  # rounds and saturates at 255
    if jpeg and quality < 100:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, max(5, quality)])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out
