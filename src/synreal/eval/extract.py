"""Frozen feature extraction from a ViT backbone (DINO's evaluation protocols).

Protocols:

* ``cls``: the normalised CLS token of the last block (DINO eval_knn).
* ``dino_linear``: the normalised CLS tokens of the last ``n_last_blocks`` blocks,
  concatenated, optionally with the average-pooled patch tokens of the last block
  (DINO eval_linear: n = 4 for ViT-S, avgpool off; n = 1 + avgpool for ViT-B).

Images are preprocessed with the checkpoint's own recipe (resize, centre crop, mean/std)
so evaluation never restates what the backbone was trained with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2
from tqdm import tqdm

PROTOCOLS = ("cls", "dino_linear")


@dataclass(frozen=True)
class Preprocess:
    """Evaluation preprocessing: resize the short side, centre crop, normalise."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def transform(self) -> v2.Compose:
        """The torchvision v2 pipeline from a uint8 HWC array to a normalised CHW float tensor."""
        return v2.Compose([
            v2.ToImage(),
            v2.Resize(self.resize, interpolation=InterpolationMode(self.interpolation),
                      antialias=True),
            v2.CenterCrop(self.crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(self.mean, self.std),
        ])


class ImageFiles(Dataset):
    """Decode image files as RGB (any mode, 16-bit and CMYK included) and preprocess them."""

    def __init__(self, paths: Sequence[str], preprocess: Preprocess) -> None:
        self.paths = list(paths)
        self.transform = preprocess.transform()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from synreal.data.manifest import load_rgb

        return self.transform(np.array(load_rgb(self.paths[index])))  # writable copy


def embed_batch(model: torch.nn.Module, images: torch.Tensor, protocol: str,
                n_last_blocks: int = 4, avgpool: bool = False) -> torch.Tensor:
    """Features ``(B, D')`` of a batch ``(B, 3, H, W)`` under ``protocol``.

    ``D' = D`` for ``cls``; ``n_last_blocks * D`` (+ ``D`` with avgpool) for ``dino_linear``.
    """
    if protocol == "cls":
        return model.forward_features(images)[:, 0]
    if protocol != "dino_linear":
        raise ValueError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")
    blocks = model.forward_intermediates(images, indices=n_last_blocks, norm=True,
                                         return_prefix_tokens=True, intermediates_only=True,
                                         output_fmt="NLC")
    parts = [prefix[:, 0] for _, prefix in blocks]
    if avgpool:
        parts.append(blocks[-1][0].mean(dim=1))
    return torch.cat(parts, dim=-1)


@torch.no_grad()
def extract_features(model: torch.nn.Module, paths: Sequence[str], preprocess: Preprocess,
                     protocol: str = "cls", n_last_blocks: int = 4, avgpool: bool = False,
                     batch_size: int = 256, num_workers: int = 0,
                     device: str = "cpu") -> tuple[np.ndarray, float]:
    """Embed every image in ``paths`` (order kept); return ``(float32 (N, D'), images/s)``.

    Runs under ``no_grad`` in eval mode, with bf16 autocast on CUDA.
    """
    model = model.eval().to(device)
    loader = DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.startswith("cuda"))
    chunks = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))
    start = time.perf_counter()
    with tqdm(total=len(paths), unit="img", desc=f"features {protocol}", mininterval=2) as bar:
        for images in loader:
            with autocast:
                out = embed_batch(model, images.to(device, non_blocking=True), protocol,
                                  n_last_blocks, avgpool)
            chunks.append(out.float().cpu().numpy())
            bar.update(len(images))
    rate = len(paths) / max(time.perf_counter() - start, 1e-9)
    return np.concatenate(chunks).astype(np.float32, copy=False), rate
