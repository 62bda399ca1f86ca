"""Blank-image detection: all-black or constant images are not data.

Diffusion pipelines emit them when the safety checker fires (it replaces the image with
black), when an fp16 VAE overflows to NaN, or when a sampler diverges. Such an image is
regenerated with the next seed and the number of retries is recorded in the manifest.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Largest pixel standard deviation (0-255 scale) of an image that counts as constant.
CONSTANT_STD = 1.0
#: Largest pixel value of an image that counts as all-black.
BLACK_MAX = 8


def is_blank(image: Image.Image, constant_std: float = CONSTANT_STD,
             black_max: int = BLACK_MAX) -> bool:
    """True if ``image`` is all black (every value <= ``black_max``) or nearly constant.

    Example:
        >>> is_blank(Image.new("RGB", (8, 8)))
        True
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    return bool(pixels.max() <= black_max or pixels.std() <= constant_std)
