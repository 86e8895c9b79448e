"""Frames of any size / channel count -> the model input, the same tensor dualpath.contract.preprocess gives."""
import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes import SceneConfig
from dualpath.scenes.dataset import render_range
from runtime.preprocess import FrameError, Preprocessor, centre_crop, resize_square, to_bgr


@pytest.fixture(scope="module")
def scenes():
    return render_range(SceneConfig(variants_per_class=1, backgrounds_per_kind=1), seed=3, start=0, stop=4)["noisy"]


@pytest.fixture
def pre():
    return Preprocessor(contract.IMAGE_SIZE, contract.MEAN, contract.STD)


def test_grey_bgra_single_channel_and_16_bit_become_bgr():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 40), np.uint8)
    np.testing.assert_array_equal(to_bgr(grey), np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(to_bgr(grey[:, :, None]), to_bgr(grey))
    bgra = rng.integers(0, 256, (30, 40, 4), np.uint8)
    np.testing.assert_array_equal(to_bgr(bgra), bgra[:, :, :3])
    wide = grey.astype(np.uint16) * 257  # 16-bit version of the same picture
    np.testing.assert_array_equal(to_bgr(wide), to_bgr(grey))
    bgr = rng.integers(0, 256, (30, 40, 3), np.uint8)
    assert to_bgr(bgr) is bgr


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((0, 0, 3), np.uint8), "empty frame"),
        (np.zeros((8, 8, 3), np.float32), "dtype float32"),
        (np.zeros((8, 8, 2), np.uint8), "shape (8, 8, 2)"),
        (np.zeros((2, 8, 8, 3), np.uint8), "shape (2, 8, 8, 3)"),
        (None, "empty frame"),
    ],
)
def test_unusable_frames_are_refused_with_what_was_wrong(frame, message):
    with pytest.raises(FrameError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_bgr(frame)


def test_centre_crop_keeps_the_middle_square():
    image = np.arange(6 * 10).reshape(6, 10)
    np.testing.assert_array_equal(centre_crop(image), image[:, 2:8])
    np.testing.assert_array_equal(centre_crop(image.T), image.T[2:8, :])


def test_centre_crop_to_a_multiple_of_the_model_size():
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[8:712, 288:992] = 1  # the 704 x 704 square (11 x 64) in the middle
    crop = centre_crop(frame, multiple_of=64)
    assert crop.shape == (704, 704, 3) and crop.all()
    assert centre_crop(np.zeros((40, 50)), multiple_of=64).shape == (40, 40)  # smaller than the model: plain square


def test_resize_undoes_an_integer_nearest_upscale_exactly(scenes):
    big = cv2.resize(scenes[0], (256, 256), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(resize_square(big, 64), scenes[0])
    assert resize_square(np.zeros((20, 20, 3), np.uint8), 64).shape == (64, 64, 3)


def test_scene_at_model_size_gives_the_contract_tensor(scenes, pre):
    bgr = cv2.cvtColor(scenes[1], cv2.COLOR_RGB2BGR)
    rgb, x = pre(bgr)
    np.testing.assert_array_equal(rgb, scenes[1])
    assert x.dtype == np.float32 and x.shape == (1, 3, 64, 64) and x.flags.c_contiguous
    np.testing.assert_array_equal(x, contract.preprocess(scenes[1]))


def test_wide_upscaled_frame_is_cropped_and_shrunk_back_to_the_scene(scenes, pre):
    # A 16:9 camera frame whose centre square is the scene at 4x: crop + INTER_AREA gives the scene back.
    square = cv2.resize(cv2.cvtColor(scenes[2], cv2.COLOR_RGB2BGR), (256, 256), interpolation=cv2.INTER_NEAREST)
    frame = np.zeros((256, 456, 3), np.uint8)
    frame[:, 100:356] = square
    _, x = pre(frame)
    np.testing.assert_array_equal(x, contract.preprocess(scenes[2]))


def test_normalisation_follows_the_metadata_not_the_defaults():
    pre = Preprocessor(8, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    _, x = pre(np.full((16, 16, 3), 255, np.uint8))
    np.testing.assert_allclose(x[0, :, 0, 0], [2.0, 1.0, 0.5])
    assert x.shape == (1, 3, 8, 8)


def test_preprocessor_from_metadata_and_its_validation():
    class Meta:
        image_size, mean, std = 32, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5)

    assert Preprocessor.from_metadata(Meta()).size == 32
    with pytest.raises(ValueError, match="std values must be > 0"):
        Preprocessor(64, (0, 0, 0), (1, 0, 1))
    with pytest.raises(ValueError, match="one value per RGB channel"):
        Preprocessor(64, (0, 0), (1, 1))
