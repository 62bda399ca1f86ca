"""Image embedders for the audit's model-free and model-backed measures.

Consistency (probe-on-real), diversity, near-duplicates and test leaks compare images in
an embedding space (FID has its own, :mod:`~synreal.audit.inception`). The embedders:

* ``dinov2``: DINOv2 (Oquab et al. 2023) through transformers' ``Dinov2Model``, a
  ``save_pretrained`` folder such as ``facebook/dinov2-base``; the feature is the
  normalised CLS token (``pooler_output``), the image preprocessed by the folder's own
  image processor. A semantic embedding: near copies of one photograph sit close,
  unrelated photographs of one breed do not.
* ``clip``: the image tower of an open_clip model folder (``open_clip_config.json`` beside
  the weights), e.g. ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K``.
* ``timm``: pooled features of a timm model from a local weights file.
* ``colour-layout``: weights-free (an 8x8 thumbnail and a colour histogram), for the demo
  and tests only: it puts unrelated photographs at cosine ~0.9, so tables that use it say
  so.

Weights that do not fit the architecture (missing, unexpected or mis-shaped tensors) are a
one-sentence ConfigError naming the key, never a silently half-random model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from synreal.errors import ConfigError

Embed = Callable[[Sequence[str]], np.ndarray]
EMBEDDERS = ("colour-layout", "timm", "dinov2", "clip")
#: What each embedder is called in table captions (the model id is added when known).
DESCRIPTIONS = {"colour-layout": "colour-layout (thumbnail + colour histogram; demo only, not "
                                 "a semantic embedding)",
                "timm": "timm", "dinov2": "DINOv2 CLS token", "clip": "CLIP image embedding"}


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


def dinov2_embedder(weights: str | None, model_id: str = "facebook/dinov2-base",
                    batch_size: int = 64, device: str = "cpu",
                    key: str = "embedder_weights") -> Embed:
    """Normalised CLS features (``pooler_output``) of a local transformers DINOv2 folder."""
    import torch

    from synreal.data.manifest import load_rgb

    model, processor = load_dinov2(weights, model_id, device, key)

    @torch.no_grad()
    def embed(paths: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(paths), batch_size):
            images = [load_rgb(p) for p in paths[start:start + batch_size]]
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            parts.append(model(pixel_values=pixels.to(device)).pooler_output.float().cpu()
                         .numpy())
        return np.concatenate(parts) if parts else np.zeros((0, model.config.hidden_size))

    return embed


def load_dinov2(weights: str | None, model_id: str, device: str = "cpu",
                key: str = "embedder_weights") -> tuple:
    """``(Dinov2Model, image processor)`` from a local folder; every tensor must fit."""
    from synreal.audit.weights import load_pretrained_strict, require_weights

    folder = require_weights(weights, key, model_id, expect="folder")
    from transformers import AutoImageProcessor, Dinov2Model

    model = load_pretrained_strict(Dinov2Model, folder, key, "dinov2")
    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return model.eval().to(device), processor


def clip_embedder(weights: str | None, model: str = "ViT-B-32", batch_size: int = 64,
                  device: str = "cpu", key: str = "embedder_weights") -> Embed:
    """Image-tower features of an open_clip model (folder or weights file of ``model``)."""
    import torch
    from PIL import Image

    from synreal.audit.consistency import load_open_clip
    from synreal.data.manifest import load_rgb

    clip, transform, _ = load_open_clip(weights, model, device, key=key)

    @torch.no_grad()
    def embed(paths: Sequence[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([transform(Image.fromarray(load_rgb(p)))
                                 for p in paths[start:start + batch_size]])
            parts.append(clip.encode_image(batch.to(device)).float().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    return embed


def create_embedder(name: str, model: str | None = None, weights: str | None = None,
                    device: str = "cpu") -> Embed:
    """An embedder by name; unknown names list the known ones."""
    if name == "colour-layout":
        return colour_layout
    if name == "timm":
        if not model or not weights:
            raise ConfigError("audit.embedding.embedder timm needs audit.embedding."
                              "embedder_model (a timm name) and embedder_weights (a local "
                              "weights file).")
        return timm_embedder(model, weights, device=device)
    if name == "dinov2":
        return dinov2_embedder(weights, model or "facebook/dinov2-base", device=device)
    if name == "clip":
        return clip_embedder(weights, model or "ViT-B-32", device=device)
    raise ConfigError(f"unknown audit embedder {name!r}; known: {list(EMBEDDERS)}.")


def describe(name: str, model: str | None) -> str:
    """The embedder as a table caption names it, e.g. ``DINOv2 CLS token (facebook/...)``."""
    text = DESCRIPTIONS.get(name, name)
    return f"{text} ({model})" if model and name != "colour-layout" else text
