"""The one resize that brings real and synthetic images to a study's working resolution.

A comparison of real and synthetic pretraining data is only fair when both reach the model
through the same resampling: a sharper filter on one side is a difference the network can
learn. Every place that shrinks an image before DINO sees it uses :func:`downscale`: the
``generate`` stage (native 1024 / 512 px -> ``image_size``) and pretraining's loading of
any image (real AFHQ at 512 px, or a synthetic one) on both the per-image (``augment: cpu``)
and the decoded-batch (``augment: batched``) paths.

The filter is PIL's bicubic, which widens its support by the shrink factor (antialiased): the
interpolation official DINO's ``RandomResizedCrop`` applies to its PIL images.

Example:
    >>> from PIL import Image
    >>> downscale(Image.new("RGB", (512, 384)), 256).size
    (256, 256)
"""

from __future__ import annotations

from PIL import Image

#: Name of the filter, recorded in generated manifests (column ``resample``).
FILTER = "bicubic"
_PIL_FILTER = Image.Resampling.BICUBIC


def downscale(image: Image.Image, side: int) -> Image.Image:
    """``image`` as RGB ``side`` x ``side``: short side resized to ``side``, centre square kept.

    Square images (AFHQ, generated ones) are only resized. No-op when already that size.
    """
    if side < 1:
        raise ValueError(f"downscale side must be a positive integer, not {side}.")
    image = image.convert("RGB")
    width, height = image.size
    if (width, height) == (side, side):
        return image
    scale = side / min(width, height)
    new = (max(side, round(width * scale)), max(side, round(height * scale)))
    if new != (width, height):
        image = image.resize(new, _PIL_FILTER)
    left, top = (new[0] - side) // 2, (new[1] - side) // 2
    return image.crop((left, top, left + side, top + side))
