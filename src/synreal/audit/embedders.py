"""Image embedders for the audit's model-free and model-backed measures.

Consistency (probe-on-real), diversity, near-duplicates and FID/KID all compare images in
an embedding space. ``colour-layout`` needs no weights (the demo and tests: a small
thumbnail plus a colour histogram, enough to tell toy breeds apart); ``timm`` loads a
classifier from a local weights file (full studies: e.g. an ImageNet ViT or Inception).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from synreal.errors import ConfigError

Embed = Callable[[Sequence[str]], np.ndarray]
EMBEDDERS = ("colour-layout", "timm")


def colour_layout(paths: Sequence[str], thumb: int = 8, bins: int = 4) -> np.ndarray:
    """``(N, 3 * thumb**2 + bins**3)`` float32: an RGB thumbnail and a joint colour histogram."""
    from synreal.data.manifest import load_rgb

    rows = []
    for path in paths:
        image = load_rgb(path)
        small = np.asarray(load_rgb(path, thumb), dtype=np.float32).reshape(-1) / 255.0
        quantised = (image.reshape(-1, 3).astype(np.int64) * bins) // 256
        codes = quantised[:, 0] * bins * bins + quantised[:, 1] * bins + quantised[:, 2]
        histogram = np.bincount(codes, minlength=bins ** 3).astype(np.float32)
        rows.append(np.concatenate([small, np.sqrt(histogram / histogram.sum())]))
    return np.stack(rows).astype(np.float32)


def timm_embedder(model_name: str, weights: str, batch_size: int = 64,
                  device: str = "cpu") -> Embed:
    """Pooled features of a timm model loaded from a local weights file (no download)."""
    import timm
    import torch
    from torch.utils.data import DataLoader

    from synreal.audit.weights import require_weights
    from synreal.eval.extract import ImageFiles, Preprocess

    path = require_weights(weights, "embedder_weights", model_name, "file")
    model = timm.create_model(model_name, pretrained=True, num_classes=0,
                              pretrained_cfg_overlay={"file": str(path)}).eval().to(device)
    cfg = model.pretrained_cfg
    size = cfg["input_size"][-1]
    preprocess = Preprocess(int(round(size / cfg.get("crop_pct", 0.875))), size,
                            tuple(cfg["mean"]), tuple(cfg["std"]))

    @torch.no_grad()
    def embed(paths: Sequence[str]) -> np.ndarray:
        loader = DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size)
        return np.concatenate([model(x.to(device)).float().cpu().numpy() for x in loader])

    return embed


def create_embedder(name: str, model: str | None = None, weights: str | None = None,
                    device: str = "cpu") -> Embed:
    """An embedder by name; unknown names list the known ones."""
    if name == "colour-layout":
        return colour_layout
    if name == "timm":
        if not model or not weights:
            raise ConfigError("audit.embedder timm needs audit.embedder_model (a timm name) "
                              "and audit.embedder_weights (a local weights file).")
        return timm_embedder(model, weights, device=device)
    raise ConfigError(f"unknown audit embedder {name!r}; known: {list(EMBEDDERS)}.")
