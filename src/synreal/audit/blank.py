"""Blank and corrupt images: pictures that are not data.

Diffusion pipelines emit all-black images when the safety checker fires, NaN-black ones when
an fp16 VAE overflows, and flat ones when a sampler diverges (SynBench Fig. 10 shows Sing
Diffusion's entirely black images). A file that cannot be decoded is *corrupt*; this module
flags decoded images, and :func:`decode_or_reason` turns a decoding failure into a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from synreal.data.manifest import UndecodableImage


def blank_flags(images: np.ndarray, constant_std: float = 1.0, black_max: int = 8,
                white_min: int = 247) -> dict[str, np.ndarray]:
    """Flag constant, all-black and all-white images in a uint8 batch ``(B, H, W, 3)``.

    Returns:
        ``{"constant", "black", "white", "blank"}``, each a ``(B,)`` bool array; ``blank`` is
        their union.

    Example:
        >>> blank_flags(np.zeros((1, 4, 4, 3), np.uint8))["blank"]
        array([ True])
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be a batch (B, H, W, 3), got shape {images.shape}")
    flat = images.reshape(images.shape[0], -1)
    constant = flat.std(axis=1, dtype=np.float64) <= constant_std
    black = flat.max(axis=1) <= black_max
    white = flat.min(axis=1) >= white_min
    return {"constant": constant, "black": black, "white": white,
            "blank": constant | black | white}


def decode_or_reason(load: Callable[[str], np.ndarray],
                     path: str) -> tuple[np.ndarray | None, str | None]:
    """``(image, None)`` when ``load(path)`` decodes, else ``(None, reason)``."""
    if not Path(path).is_file():
        return None, "missing file"
    try:
        return load(path), None
    except UndecodableImage as error:  # load_rgb names the file; the audit keeps the cause
        return None, error.reason
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        return None, f"cannot decode: {error}"
