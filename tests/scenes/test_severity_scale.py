"""The severity scale (dualpath/scenes/config.py, degrade.draw): severity 1 is the default data set, byte for byte;
each level of the drift sweep 0 < 1 < 2 < 3 is harder than the last; severity 3 stays readable (a darkness floor,
JPEG quality bounded). Numbers: docs/measurements.md, "The severity scale"."""
import dataclasses
import hashlib

import numpy as np
import pytest

from dualpath.metrics import image_metrics
from dualpath.scenes import SceneConfig, render_scene
from dualpath.scenes.config import (BRIGHTNESS_FLOOR, GAMMA_CEILING, JPEG_QUALITY_FLOOR, SEVERITY_MAX,
                                    SEVERITY_SCALE, DegradeConfig)
from dualpath.scenes.degrade import draw

SWEEP = (0.0, 1.0, 2.0, 3.0)  # the drift sweep's default severities (export --severities)
DARK_FLOOR = 0.04  # at severity 3 no scene's mean intensity (0-1) is below this (1000 drift scenes: min 0.048)

# sha256 of the noisy images of scenes 0-19 (seed 0) of the small test config, computed with generator 1.1's
# linear scale before the bounded one replaced it above severity 1. A changed hash means the default data set's
# bytes moved: bump GENERATOR_VERSION (dualpath/scenes/config.py) and say so, or undo the change.
FINGERPRINTS = {
    (1.0, False): "79a9bb754be7282dfc0d2234c7a358f5cbfdea25366cf1bb7acb4268743b2fe5",
    (0.5, False): "120212c44262dea87831c01db634dba1a74aeb5af87abb72001fefbfbaf3bc61",
    (1.0, True): "45df973dd1fc9243d1d398075aeed27006530b95633527cccaeab1596cde52cc",  # JPEG and motion blur always on
}


def _scenes(config: SceneConfig, severity: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    scenes = [render_scene(config.with_severity(severity), seed, i) for i in range(n)]
    return np.stack([s.noisy for s in scenes]), np.stack([s.clean for s in scenes])


@pytest.mark.parametrize("severity, extras", list(FINGERPRINTS))
def test_severity_up_to_1_renders_what_generator_1_1_did(small_config, severity, extras):
    cfg = small_config
    if extras:
        cfg = dataclasses.replace(cfg, degrade=dataclasses.replace(cfg.degrade, jpeg_p=1.0, motion_blur_p=1.0))
    h = hashlib.sha256()
    for i in range(20):
        h.update(render_scene(cfg.with_severity(severity), 0, i).noisy.tobytes())
    assert h.hexdigest() == FINGERPRINTS[severity, extras]


def test_each_level_of_the_sweep_is_harder_than_the_last():
    """SSIM of the degraded scene to its clean scene, over the same 30 scenes of the default config, falls by at
    least 0.08 a level (measured: 1.00, 0.50, 0.32, 0.20); severity 3 keeps more than 0.15 of it (the unbounded
    scale kept 0.06), and the median brightness falls too."""
    ssim, brightness = [], []
    for s in SWEEP:
        noisy, clean = _scenes(SceneConfig(), s, 30)
        ssim.append(image_metrics(noisy / np.float32(255), clean / np.float32(255))["ssim"])
        brightness.append(float(np.median(noisy.reshape(len(noisy), -1).mean(1))))
    steps = -np.diff(ssim)
    assert (steps >= 0.08).all(), f"SSIM per severity {SWEEP}: {np.round(ssim, 3)}"
    assert ssim[-1] > 0.15, f"severity 3 keeps SSIM {ssim[-1]:.3f} of the clean scene"
    assert (np.diff(brightness) < 0).all(), f"median brightness per severity {SWEEP}: {brightness}"


def test_no_scene_at_severity_3_is_darker_than_the_floor():
    noisy, _ = _scenes(SceneConfig(), 3.0, 60, seed=1)
    means = noisy.reshape(len(noisy), -1).mean(1) / 255
    assert means.min() >= DARK_FLOOR, f"darkest scene's mean {means.min():.3f} < {DARK_FLOOR}"


@pytest.mark.parametrize("severity", [1.5, 2.0, 3.0, SEVERITY_MAX])
def test_bounds_hold_at_every_severity(severity):
    """Drawn over 2000 random streams: the low-light factor never below BRIGHTNESS_FLOOR, gamma never above
    GAMMA_CEILING, JPEG quality never below JPEG_QUALITY_FLOOR, whatever the severity."""
    cfg = DegradeConfig(severity=severity, jpeg_p=1.0)
    rng = np.random.default_rng(0)
    drawn = [draw(cfg, rng) for _ in range(2000)]
    assert min(d.brightness for d in drawn) >= BRIGHTNESS_FLOOR - 1e-9
    assert max(d.gamma for d in drawn) <= GAMMA_CEILING + 1e-9
    assert min(d.jpeg_quality for d in drawn) >= JPEG_QUALITY_FLOOR


def test_every_degradation_grows_with_severity_scene_by_scene():
    """The same scene (the same random stream) is never less degraded at a higher severity, across the scale."""
    levels = np.linspace(0.0, SEVERITY_MAX, 17)
    for seed in range(200):
        d = [draw(DegradeConfig(severity=s), np.random.default_rng(seed)) for s in levels]
        for name, sign in (("brightness", -1), ("gamma", 1), ("blur_sigma", 1), ("noise_std", 1), ("shot_noise", 1),
                           ("motion_length", 1), ("jpeg_quality", -1)):
            v = sign * np.array([getattr(x, name) for x in d], float)
            assert (np.diff(v) >= -1e-12).all(), f"{name} over severities {levels}: {v}"


def test_configs_above_1_say_which_scale_made_them():
    """Severities above 1 render differently than generator 1.1 did: their JSON (so manifests and cache tags) says
    so, and a cached set of the old scale is never reused; up to 1 the JSON is generator 1.1's."""
    assert "severity_scale" not in SceneConfig().to_dict()["degrade"]
    three = SceneConfig().with_severity(3)
    assert three.to_dict()["degrade"]["severity_scale"] == SEVERITY_SCALE
    assert SceneConfig.from_dict(three.to_dict()) == three
    other = three.to_dict()
    other["degrade"]["severity_scale"] = "linear"
    with pytest.raises(ValueError, match="severity_scale"):
        SceneConfig.from_dict(other)
