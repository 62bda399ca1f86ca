"""A pretraining set decoded once into one uint8 tensor, for batched on-device augmentation.

JPEG/PNG decoding is what limits the per-sample DataLoader path; decoding every image once
at a fixed working resolution removes it from the training loop. Each image is brought to
``side`` by :func:`synreal.data.downscale.downscale` (short side resized, antialiased bicubic,
central ``side x side`` square kept), the resize generated images got at generation, so real
and synthetic images reach DINO through the same filter; crops are cut from that square (no
difference for square datasets such as AFHQ; the official recipe crops from the whole image).
The per-image path (``augment: cpu``) loads its images through :func:`decode_image` too, so
both paths crop from the same working resolution.

Memory: ``N * sources * 3 * side**2`` bytes, 192 KiB per image at ``side = 256``: 15,000
AFHQ images take 2.9 GB, ImageNet-1k (1.28 M) 246 GB, for which the CPU path remains.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm


def default_side(global_crop_size: int) -> int:
    """Working resolution for a crop size: 8/7 of it (256 for 224, like eval resizing)."""
    return int(round(global_crop_size * 8 / 7))


def decode_image(path: str, side: int) -> torch.Tensor:
    """One image as uint8 ``(3, side, side)``: :func:`~synreal.data.downscale.downscale`d."""
    from synreal.data.downscale import downscale
    from synreal.data.manifest import load_rgb

    square = downscale(Image.fromarray(load_rgb(path)), side)
    return torch.from_numpy(np.array(square)).permute(2, 0, 1).contiguous()


def decode_samples(samples: list[tuple[str, ...]], side: int,
                   workers: int = 1) -> torch.Tensor:
    """All samples' images as uint8 ``(N, sources, 3, side, side)`` (sources: 1, or 2 MixDiff).

    Decoded with ``workers`` threads (PIL releases the GIL while decoding), with a progress
    bar: at full scale this is minutes of work before the first step.
    """
    if not samples:
        raise ValueError("no samples to decode")
    sources = len(samples[0])
    out = torch.empty(len(samples), sources, 3, side, side, dtype=torch.uint8)

    def fill(index: int) -> None:
        for k, path in enumerate(samples[index]):
            out[index, k] = decode_image(path, side)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in tqdm(pool.map(fill, range(len(samples))), total=len(samples),
                      desc="decode", unit="img", mininterval=2.0):
            pass
    return out
