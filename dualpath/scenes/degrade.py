"""Image degradation: low light, blur, sensor noise, optional motion blur and JPEG (paper IV.A).

Pure function of (clean image, DegradeConfig, rng): uint8 RGB in, uint8 RGB of the same size out; the steps in
between work in float32 on a 0-1 intensity scale. `draw` maps the severity to one scene's parameters (the scale:
linear up to 1, bounded beyond; dualpath/scenes/config.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dualpath.scenes.config import (BLUR_GROWTH, BRIGHTNESS_FLOOR, GAMMA_CEILING, JPEG_QUALITY_FLOOR, NOISE_GROWTH,
                                     SEVERITY_MAX, DegradeConfig)


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


@dataclass(frozen=True)
class Degradation:
    """One scene's degradation, drawn from a DegradeConfig at its severity: what `degrade` applies."""

    brightness: float  # low-light factor on the tone curve's top (1 = none)
    gamma: float  # tone curve exponent (1 = none)
    blur_sigma: float  # Gaussian blur sigma, output pixels (skipped below 0.05)
    noise_std: float  # constant part of the sensor noise, std in [0, 1] units
    shot_noise: float  # signal-dependent part: std = shot_noise * sqrt(intensity)
    motion: bool  # whether a linear motion blur is applied ...
    motion_length: float  # ... of this length in pixels (skipped below 1.5) ...
    motion_angle: float  # ... at this angle in degrees
    jpeg: bool  # whether the image is JPEG re-compressed ...
    jpeg_quality: int  # ... at this quality (skipped at 100)


def draw(cfg: DegradeConfig, rng: np.random.Generator) -> Degradation:
    """The parameters of one scene's degradation at cfg.severity (the random draws of `degrade`, in its order)."""
    s = cfg.severity
    b, g, blur, noise, shot = (_uniform(rng, r) for r in (cfg.brightness, cfg.gamma, cfg.blur_sigma, cfg.noise_std,
                                                           cfg.shot_noise))
    motion = rng.random() < cfg.motion_blur_p
    length = _uniform(rng, cfg.motion_blur_length)
    motion_angle = rng.uniform(0.0, 180.0)
    jpeg = rng.random() < cfg.jpeg_p
    q = _uniform(rng, cfg.jpeg_quality)
    if s <= 1.0:  # linear from clean to the drawn (severity 1) values: generator 1.1's scale, byte for byte
        brightness, gamma, quality = 1.0 - s * (1.0 - b), 1.0 + s * (g - 1.0), 100 - s * (100 - q)
        blur_grow = noise_grow = s
    else:  # beyond 1: darkness and JPEG move towards their bounds, blur and noise grow more slowly (config.py)
        t = (s - 1.0) / (SEVERITY_MAX - 1.0)  # 0 at severity 1, 1 at the top of the scale
        brightness = b + (min(BRIGHTNESS_FLOOR, b) - b) * t
        gamma = g + (max(GAMMA_CEILING, g) - g) * t
        quality = q + (min(JPEG_QUALITY_FLOOR, q) - q) * t
        blur_grow, noise_grow = 1.0 + BLUR_GROWTH * (s - 1.0), 1.0 + NOISE_GROWTH * (s - 1.0)
    sigma, noise_std, shot = blur_grow * blur, noise_grow * noise, noise_grow * shot
    motion_len = max(1.0, blur_grow * length)
    quality = int(round(quality))
    return Degradation(max(brightness, 0.02), gamma, sigma, noise_std, shot, bool(motion), motion_len, motion_angle,
                       bool(jpeg), max(5, quality))


def degrade(clean: np.ndarray, cfg: DegradeConfig, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB clean image -> uint8 RGB degraded image of the same size.

    Every random draw happens whatever the severity, so a scene's other randomness does not shift when the
    severity changes: the same scene at severities 0, 1 and 2 shows the same objects, only more degraded.
    """
    d = draw(cfg, rng)
    # OpenCV's normal generator is faster than numpy's here (docs/measurements.md); seeded from the scene's own stream
    # it stays a pure function of the scene (cv2's generator state is per thread, and is set right before use).
    cv2.setRNGSeed(int(rng.integers(1, 2**31)))
    noise = np.empty(clean.shape, np.float32)
    cv2.randn(noise, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))

    # Low light as a tone curve on the 256 possible values: one table look-up instead of a power per pixel.
    curve = np.power(np.arange(256, dtype=np.float32) / 255, np.float32(d.gamma)) * np.float32(d.brightness)
    x = cv2.LUT(clean, curve)
    if d.blur_sigma > 0.05:
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=d.blur_sigma, borderType=cv2.BORDER_REFLECT)
    if d.motion and d.motion_length > 1.5:
        x = cv2.filter2D(x, -1, _motion_kernel(d.motion_length, d.motion_angle), borderType=cv2.BORDER_REFLECT)
    if d.shot_noise > 0:  # sensor noise: a constant floor plus shot noise growing with the square root of the signal
        amp = cv2.sqrt(x)  # x >= 0: a tone curve of non-negative values, blurred
        amp *= np.float32(d.shot_noise)
        amp += np.float32(d.noise_std)
        noise *= amp
    else:
        noise *= np.float32(d.noise_std)
    x += noise
    np.maximum(x, 0.0, out=x)
    out = cv2.convertScaleAbs(x, alpha=255.0)  # rounds and saturates at 255
    if d.jpeg and d.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, d.jpeg_quality])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out
