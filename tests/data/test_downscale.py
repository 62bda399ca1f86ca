"""One downscale for real and synthetic images, checked against PIL's own fit."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from synreal.data.downscale import FILTER, downscale


def _noise(width, height, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


def test_square_images_are_resized_with_antialiased_bicubic():
    image = _noise(512, 512)
    got = downscale(image, 256)
    assert got.size == (256, 256) and got.mode == "RGB"
    assert np.array_equal(np.asarray(got), np.asarray(image.resize((256, 256), Image.BICUBIC)))
    assert FILTER == "bicubic"
    assert downscale(got, 256) is not None and np.array_equal(np.asarray(downscale(got, 256)),
                                                              np.asarray(got))


@pytest.mark.parametrize("size", [(80, 40), (40, 90), (33, 33)])
def test_other_shapes_match_pils_centre_fit(size):
    image = _noise(*size, seed=1)
    got = np.asarray(downscale(image, 24), np.float64)
    reference = np.asarray(ImageOps.fit(image, (24, 24), Image.BICUBIC), np.float64)
    assert got.shape == (24, 24, 3)
    assert np.abs(got - reference).mean() < 3.0  # crop-then-resize vs resize-then-crop


def test_real_and_synthetic_paths_share_the_function(tmp_path):
    """generate's resize and pretraining's decode give the same pixels for the same image."""
    from synreal.dino.decoded import decode_image
    from synreal.generate.run import resize

    image = _noise(96, 96, seed=2)
    image.save(tmp_path / "a.png")
    synthetic = np.asarray(resize(image, 32))
    real = decode_image(str(tmp_path / "a.png"), 32)
    assert torch.equal(real, torch.from_numpy(synthetic.copy()).permute(2, 0, 1))
    assert np.array_equal(synthetic, np.asarray(downscale(image, 32)))


def test_a_bad_side_is_refused():
    with pytest.raises(ValueError, match="positive"):
        downscale(_noise(8, 8), 0)
