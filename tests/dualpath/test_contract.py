import numpy as np
import pytest

from dualpath import contract


def test_twenty_distinct_classes():
    assert contract.NUM_CLASSES == 20 == len(set(contract.CLASS_NAMES))
    assert "potato peeler" in contract.CLASS_NAMES and "peeler" in contract.CLASS_NAMES


def test_class_index_accepts_folder_spellings():
    assert contract.class_index("Bread_Knife") == contract.CLASS_NAMES.index("bread knife")
    assert contract.class_index("pizza-cutter") == contract.CLASS_NAMES.index("pizza cutter")
    with pytest.raises(ValueError, match="unknown class 'spork'.*whisk"):
        contract.class_index("spork")


def test_preprocess_normalises_like_torchvision():
    img = np.zeros((2, 64, 64, 3), np.uint8)
    img[..., 0] = 255
    x = contract.preprocess(img)
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0, 0, 0], (1 - 0.485) / 0.229, rtol=1e-6)
    np.testing.assert_allclose(x[0, 1, 0, 0], (0 - 0.456) / 0.224, rtol=1e-6)


def test_preprocess_rejects_wrong_shapes_with_advice():
    with pytest.raises(ValueError, match="resize or centre-crop"):
        contract.preprocess(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        contract.preprocess(np.zeros((1, 64, 64), np.uint8))


def test_recon_round_trip():
    clean = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    target = contract.target_from_clean(clean)
    assert target.min() >= -1 and target.max() <= 1 and target.shape == (3, 3, 64, 64)
    np.testing.assert_array_equal(contract.recon_to_uint8(target), clean)
