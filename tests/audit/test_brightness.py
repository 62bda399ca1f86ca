import numpy as np
import pytest
from skimage.color import rgb2lab

from synreal.audit.brightness import lightness, mean_lightness


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 17, 5)])
def test_lightness_equals_skimage_on_random_uint8_images(seed, shape):
    images = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    reference = np.stack([rgb2lab(image)[..., 0] for image in images])
    # skimage rounds the sRGB matrix to 6 digits; the difference stays far below 0.01 L*
    np.testing.assert_allclose(lightness(images), reference, atol=5e-3)
    np.testing.assert_allclose(mean_lightness(images), reference.mean(axis=(1, 2)), atol=5e-3)


def test_lightness_of_float_images_equals_skimage():
    images = np.random.default_rng(3).random((2, 6, 6, 3))
    reference = np.stack([rgb2lab(image)[..., 0] for image in images])
    np.testing.assert_allclose(lightness(images), reference, atol=5e-3)


def test_every_grey_level_matches_skimage_including_the_linear_segment():
    grey = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    np.testing.assert_allclose(lightness(grey), rgb2lab(grey)[..., 0], atol=1e-3)


def test_black_and_white_are_0_and_100():
    batch = np.stack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)])
    np.testing.assert_allclose(mean_lightness(batch), [0.0, 100.0], atol=1e-4)


def test_mean_lightness_rejects_a_single_image():
    with pytest.raises(ValueError, match="batch"):
        mean_lightness(np.zeros((4, 4, 3), np.uint8))
