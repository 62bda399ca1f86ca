"""A weights-free central-object box: background model from the border, largest foreground blob.

The demo's stand-in for SynBench's open-vocabulary detector (YOLO-World, Section 3.2): it
needs no weights, so the toy-world audit and the tests run offline. Steps, per image:

1. Downsample to ``size`` px and divide by the image's mean intensity, so a global
   brightness factor (the toy world's, or an exposure change) does not move the threshold.
2. Fit a smooth background ``colour = a + b x + c y`` per channel to the border pixels by
   trimmed least squares (three rounds keeping the best-fitting ``trim`` share), so a sky
   gradient is background and an object or distractor touching the border is an outlier.
3. Foreground = pixels further than ``threshold`` from the background model (RGB distance in
   units of the mean intensity); fill holes, open once to drop specks.
4. The box of the largest connected component, normalised to [0, 1].

On the toy world its box-area ratio has a Spearman correlation of about 0.85 with the
rendered box-area ratio (``tests/audit/test_object_scale.py`` checks > 0.8). It overestimates
when a distractor or an occluding person touches the object, as a detector's box would not.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

BORDER = 2
TRIM_ROUNDS = 3


def _design(h: int, w: int) -> np.ndarray:
    """``(h, w, 3)`` regressors ``[1, x, y]`` with x, y in [-0.5, 0.5]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx = xx / max(w - 1, 1) - 0.5
    yy = yy / max(h - 1, 1) - 0.5
    return np.stack([np.ones_like(xx), xx, yy], axis=-1)


def background_distance(image: np.ndarray, size: int = 96, trim: float = 0.6) -> np.ndarray:
    """Distance of each pixel to the border-fitted background, ``(h, w)`` float32.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        size: longest side after downsampling (never upsampled).
        trim: share of border pixels kept in each refit round.
    """
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    scale = size / max(pil.size)
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.BILINEAR)
    im = np.asarray(pil, dtype=np.float32)
    im = im / max(float(im.mean()), 1.0)
    h, w, _ = im.shape
    border = np.zeros((h, w), bool)
    border[:BORDER], border[-BORDER:], border[:, :BORDER], border[:, -BORDER:] = (True,) * 4
    design = _design(h, w)
    a, colours = design[border], im[border]
    keep = np.ones(len(a), bool)
    for _ in range(TRIM_ROUNDS):
        coef, *_ = np.linalg.lstsq(a[keep], colours[keep], rcond=None)
        residual = np.linalg.norm(a @ coef - colours, axis=1)
        keep = residual <= np.quantile(residual, trim)
    return np.linalg.norm(design @ coef - im, axis=-1)


def largest_blob_box(mask: np.ndarray) -> np.ndarray:
    """Normalised ``[x0, y0, x1, y1]`` of the largest 4-connected blob of ``mask`` (NaN if none)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.full(4, np.nan)
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1))
    rows, cols = ndimage.find_objects(labels)[int(np.argmax(sizes))]
    h, w = mask.shape
    return np.array([cols.start / w, rows.start / h, cols.stop / w, rows.stop / h])


def foreground_box(image: np.ndarray, size: int = 96, threshold: float = 0.2) -> np.ndarray:
    """Normalised box ``(4,)`` ``[x0, y0, x1, y1]`` of the central object of ``image``.

    Example:
        >>> img = np.full((32, 32, 3), 40, np.uint8); img[8:24, 4:20] = 220
        >>> foreground_box(img).round(3).tolist()
        [0.125, 0.25, 0.625, 0.75]
    """
    distance = background_distance(image, size)
    mask = ndimage.binary_fill_holes(distance > threshold)
    mask = ndimage.binary_opening(mask)
    return largest_blob_box(mask)


def foreground_boxes(images: list[np.ndarray], size: int = 96,
                     threshold: float = 0.2) -> np.ndarray:
    """:func:`foreground_box` over a list of images: ``(B, 4)`` normalised boxes."""
    if not images:
        return np.zeros((0, 4))
    return np.stack([foreground_box(image, size, threshold) for image in images])
