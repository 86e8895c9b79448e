import os

import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes.importer import (
    MARGIN,
    canonical_sprite,
    import_objects,
    load_object_bank,
    object_mask,
    save_object_bank,
)

BACKGROUND = (226, 222, 214)
AXES = (60, 11)  # half-length and half-width of the drawn object, pixels


def _photo(angle: float, colour=(60, 70, 160), seed: int = 0, shape=(150, 200)) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic product photo: an elongated ellipse on a plain light background with a lighting tilt and noise."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), AXES, angle, 0, 360, 255, -1)
    image = np.empty((h, w, 3), np.float32)
    image[:] = BACKGROUND
    image *= np.linspace(0.93, 1.03, w, dtype=np.float32)[None, :, None]
    image[mask > 0] = colour
    image += np.random.default_rng(seed).normal(0.0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _write(path, image: np.ndarray) -> None:
    """RGB (or single-channel) array -> image file at path, format from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, data = cv2.imencode(path.suffix, image)
    assert ok
    path.write_bytes(data.tobytes())


def _rectangle_mask(shape, size=(30, 120)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    h, w = shape
    top, left = h // 2 - size[0] // 2, w // 2 - size[1] // 2
    mask[top : top + size[0], left : left + size[1]] = 255
    return mask


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ekud")
    fork = root / "dinner_fork"
    _write(fork / "a.png", _photo(30, seed=1)[0])
    _write(fork / "b.jpg", _photo(-50, colour=(120, 80, 40), seed=2)[0])
    c, _ = _photo(10, seed=3)
    _write(fork / "c.png", c)
    _write(fork / "masks" / "c.png", _rectangle_mask(c.shape[:2]))  # not the drawn shape: must still win
    spoon = root / "Wooden-Spoon"
    d, d_mask = _photo(75, colour=(40, 40, 40), seed=4)
    _write(spoon / "d.png", d)
    _write(spoon / "d_mask.png", d_mask)
    (spoon / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (spoon / "empty.png").write_bytes(b"")
    _write(spoon / "blank.png", _photo(0, colour=BACKGROUND, seed=5)[0])  # nothing but background
    (spoon / "notes.txt").write_text("shot on a white sheet")
    _write(root / "spork" / "e.png", _photo(0, seed=6)[0])
    return root


@pytest.fixture(scope="module")
def imported(photo_folder):
    with pytest.warns(UserWarning) as caught:
        sprites, report = import_objects(photo_folder)
    return sprites, report, [str(w.message) for w in caught]


def test_report_counts_imports_skips_and_unknown_folders(imported):
    sprites, report, messages = imported
    assert report.imported == {"dinner fork": 3, "wooden spoon": 1}
    assert report.unknown_folders == ["spork"]
    assert report.mask_sources == {"colour": 2, "mask file": 2}
    reasons = {os.path.basename(path): reason for path, reason in report.skipped}
    assert set(reasons) == {"corrupt.jpg", "empty.png", "blank.png", "notes.txt"}
    assert reasons["empty.png"] == "empty file"
    assert "corrupt" in reasons["corrupt.jpg"]
    assert "no object found" in reasons["blank.png"]
    assert "not a photo format" in reasons["notes.txt"]
    assert any("spork" in m for m in messages) and any("corrupt.jpg" in m for m in messages)
    fork, spoon = contract.class_index("dinner fork"), contract.class_index("wooden spoon")
    assert sorted(sprites) == [fork, spoon] and len(sprites[fork]) == 3 and len(sprites[spoon]) == 1


def test_sprites_are_canonical_rgba(imported):
    sprites, _, _ = imported
    for rgba in (s for items in sprites.values() for s in items):
        assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
        alpha = rgba[..., 3]
        assert rgba.shape[0] > rgba.shape[1]  # long axis vertical
        # Tight crop: exactly MARGIN transparent pixels on every side, object right after them.
        assert not alpha[:MARGIN].any() and not alpha[-MARGIN:].any()
        assert not alpha[:, :MARGIN].any() and not alpha[:, -MARGIN:].any()
        assert alpha[MARGIN].any() and alpha[-MARGIN - 1].any()
        assert alpha[:, MARGIN].any() and alpha[:, -MARGIN - 1].any()


def _iou_with_upright_ellipse(alpha: np.ndarray) -> float:
    ys, xs = np.nonzero(alpha > 127)
    reference = np.zeros(alpha.shape, np.uint8)
    cv2.ellipse(reference, (round(xs.mean()), round(ys.mean())), (AXES[1], AXES[0]), 0, 0, 360, 255, -1)
    found, drawn = alpha > 127, reference > 0
    return float((found & drawn).sum() / (found | drawn).sum())


@pytest.mark.parametrize("angle", [0, 35, 90, 145])
@pytest.mark.parametrize("refine", [False, True])
def test_background_removal_recovers_the_drawn_shape_upright(angle, refine):
    image, drawn = _photo(angle, seed=angle)
    mask = object_mask(image, refine=refine)
    assert ((mask > 0) & (drawn > 0)).sum() / ((mask > 0) | (drawn > 0)).sum() > 0.85
    alpha = canonical_sprite(image, mask)[..., 3]
    assert alpha.shape[0] > 3 * alpha.shape[1]
    assert np.count_nonzero(alpha > 127) == pytest.approx(np.pi * AXES[0] * AXES[1], rel=0.12)
    assert _iou_with_upright_ellipse(alpha) > 0.8


def test_a_mask_file_is_honoured_over_the_colours(imported):
    sprites, _, _ = imported
    # c.png shows a tilted ellipse, but its mask is a horizontal 30 x 120 rectangle: the sprite must be that
    # rectangle stood upright (120 tall, 30 wide), not the ellipse.
    rect = [s for s in sprites[contract.class_index("dinner fork")] if (s[..., 3] > 127).sum() > 3000]
    assert len(rect) == 1
    alpha = rect[0][..., 3] > 127
    assert alpha.sum() == pytest.approx(30 * 120, rel=0.05)
    assert rect[0].shape[:2] == (120 + 2 * MARGIN, 30 + 2 * MARGIN)


def test_alpha_channel_of_a_cut_out_photo_is_the_mask(tmp_path):
    image, _ = _photo(20)
    alpha = _rectangle_mask(image.shape[:2], size=(20, 100))
    _write(tmp_path / "ladle" / "cutout.png", np.dstack([image, alpha]))
    sprites, report = import_objects(tmp_path, refine=False)
    assert report.mask_sources == {"alpha": 1}
    assert (sprites[contract.class_index("ladle")][0][..., 3] > 127).sum() == pytest.approx(2000, rel=0.05)


def test_mask_of_another_shape_is_skipped_not_stretched(tmp_path):
    image, _ = _photo(0)
    _write(tmp_path / "whisk" / "a.png", image)
    _write(tmp_path / "whisk" / "a_mask.png", np.full((50, 50), 255, np.uint8))
    with pytest.warns(UserWarning, match="a_mask.png"):
        sprites, report = import_objects(tmp_path, refine=False)
    assert sprites == {} and report.imported == {"whisk": 0}
    assert "50x50" in report.skipped[0][1]


def test_large_photos_are_capped_at_max_side(tmp_path):
    _write(tmp_path / "tongs" / "big.jpg", cv2.resize(_photo(90)[0], (1600, 1200)))
    sprites, _ = import_objects(tmp_path, max_side=64, refine=False)
    assert max(sprites[contract.class_index("tongs")][0].shape[:2]) <= 64


def test_folder_errors_explain_the_expected_layout(tmp_path):
    with pytest.raises(ValueError, match="does not exist.*one sub-folder per class"):
        import_objects(tmp_path / "missing")
    with pytest.raises(ValueError, match="found no sub-folders.*one sub-folder per class"):
        import_objects(tmp_path)
    (tmp_path / "cutlery").mkdir()
    with pytest.warns(UserWarning, match="cutlery"):
        with pytest.raises(ValueError, match=r"found sub-folders \['cutlery'\]"):
            import_objects(tmp_path)
    with pytest.raises(ValueError, match="max_side"):
        import_objects(tmp_path, max_side=4)


def test_bank_round_trip_is_exact_and_atomic(imported, tmp_path):
    sprites, _, _ = imported
    path = tmp_path / "bank.npz"
    save_object_bank(path, sprites)
    assert [p.name for p in tmp_path.iterdir()] == ["bank.npz"]  # no temporary file left behind
    loaded = load_object_bank(path)
    assert sorted(loaded) == sorted(sprites)
    for c in sprites:
        assert len(loaded[c]) == len(sprites[c])
        assert all(np.array_equal(a, b) for a, b in zip(loaded[c], sprites[c]))


def test_save_rejects_what_is_not_a_sprite(tmp_path):
    good = np.zeros((8, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="class indices"):
        save_object_bank(tmp_path / "b.npz", {contract.NUM_CLASSES: [good]})
    with pytest.raises(ValueError, match="uint8 RGBA"):
        save_object_bank(tmp_path / "b.npz", {0: [np.zeros((8, 4, 3), np.uint8)]})
    assert not any(tmp_path.iterdir())


def test_load_explains_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_object_bank(tmp_path / "none.npz")
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable object bank"):
        load_object_bank(tmp_path / "garbage.npz")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an object bank"):
        load_object_bank(tmp_path / "other.npz")
