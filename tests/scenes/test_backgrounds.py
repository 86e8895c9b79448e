import cv2
import numpy as np
import pytest

from dualpath.scenes.backgrounds import BACKGROUND_KINDS, lighting_field, load_background_photos, render_background


def _render(kind: str, seed: int, size: int = 192) -> np.ndarray:
    return render_background(kind, np.random.default_rng(seed), size)


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
@pytest.mark.parametrize("size", [192, 64])
def test_every_kind_renders_a_textured_rgb_image(kind, size):
    image = _render(kind, 0, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    # Not a flat fill: even laminate has visible flecks and mottling (its std is the smallest, about 3).
    assert _grey(image).std() > 1.5


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_same_seed_same_bytes_other_seed_other_texture(kind):
    assert np.array_equal(_render(kind, 3), _render(kind, 3))
    assert not np.array_equal(_render(kind, 3), _render(kind, 4))


def test_kinds_differ_from_each_other():
    images = {kind: _render(kind, 11).astype(np.float32) for kind in BACKGROUND_KINDS}
    for i, a in enumerate(BACKGROUND_KINDS):
        for b in BACKGROUND_KINDS[i + 1 :]:
            assert np.abs(images[a] - images[b]).mean() > 10, (a, b)


def _gradient_energy(image: np.ndarray) -> tuple[float, float]:
    g = _grey(image)
    return float(np.square(np.diff(g, axis=1)).mean()), float(np.square(np.diff(g, axis=0)).mean())


def test_steel_is_brushed_in_one_direction():
    for seed in range(4):
        gx, gy = _gradient_energy(_render("steel", seed))
        assert max(gx, gy) > 4 * min(gx, gy), seed


def test_wood_is_warm_and_granite_busier_than_laminate():
    for seed in range(4):
        r, g, b = _render("wood", seed).reshape(-1, 3).mean(axis=0)
        assert r > g > b, seed
        granite = np.abs(cv2.Laplacian(_grey(_render("granite", seed)), cv2.CV_32F)).mean()
        laminate = np.abs(cv2.Laplacian(_grey(_render("laminate", seed)), cv2.CV_32F)).mean()
        assert granite > 3 * laminate, seed


def test_tiles_have_straight_grout_lines():
    # Grout runs the full width or height: some rows (or columns) of the image are nearly uniform in colour,
    # far more uniform than the average row.
    for seed in range(4):
        g = _grey(_render("tiles", seed))
        spread = np.minimum(g.std(axis=1).min(), g.std(axis=0).min())
        assert spread < 0.5 * min(g.std(axis=1).mean(), g.std(axis=0).mean()) + 1, seed


def test_bad_kind_and_size_are_explained():
    with pytest.raises(ValueError, match="wood, marble"):
        render_background("carpet", np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 16"):
        render_background("wood", np.random.default_rng(0), size=8)


def test_lighting_field_is_smooth_bounded_and_seeded():
    fields = [lighting_field(np.random.default_rng(s), 128) for s in range(8)]
    for f in fields:
        assert f.shape == (128, 128) and f.dtype == np.float32
        assert 0.55 <= f.min() and f.max() <= 1.25
        assert np.abs(np.diff(f, axis=0)).max() < 0.05  # soft light, no edges
    assert np.array_equal(fields[0], lighting_field(np.random.default_rng(0), 128))
    assert np.mean([f.max() - f.min() for f in fields]) > 0.1  # it does vary the light


def _write(path, image_rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    path.write_bytes(data.tobytes())


def test_photo_loader_centre_crops_and_skips_bad_files(tmp_path):
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)
    wide[:, 100:200] = (0, 255, 0)
    wide[:, 200:] = (0, 0, 255)
    _write(tmp_path / "wide.png", wide)
    _write(tmp_path / "nested" / "tall.jpg", np.full((120, 60, 3), 128, np.uint8))
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a photo")

    with pytest.warns(UserWarning) as caught:
        images, skipped = load_background_photos(tmp_path, size=32)
    assert skipped == 2
    messages = " ".join(str(w.message) for w in caught)
    assert "corrupt.jpg" in messages and "empty.png" in messages and "empty file" in messages
    assert len(images) == 2
    assert all(im.shape == (32, 32, 3) and im.dtype == np.uint8 for im in images)
    centre = max(images, key=lambda im: float(im[..., 1].mean()) - float(im[..., 0].mean()))
    assert centre[..., 1].mean() > 250 and centre[..., 0].mean() < 5  # the green middle third, RGB order


def test_photo_loader_errors_say_what_was_found(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_background_photos(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="broken.png"):
        with pytest.raises(ValueError, match=r"found 2 file\(s\), 1 with a photo suffix.*\.jpg"):
            load_background_photos(tmp_path)
