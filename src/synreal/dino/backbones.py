"""Backbone registry: timm ViTs by name, unknown names listing the known ones.

Every backbone is created with ``dynamic_img_size=True`` so 96 px local crops (or 16 px in
the demo) pass through a model whose position embeddings were made for the global size.
"""

from __future__ import annotations

from collections.abc import Callable

import timm
import torch

from synreal.errors import ConfigError

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register(name: str) -> Callable:
    """Register a backbone factory ``factory(img_size, drop_path_rate) -> nn.Module``."""

    def wrap(factory: Callable) -> Callable:
        _REGISTRY[name] = factory
        return factory

    return wrap


def known_backbones() -> list[str]:
    """Names accepted as ``arch``."""
    return sorted(_REGISTRY)


def create_backbone(name: str, img_size: int, drop_path_rate: float = 0.0) -> torch.nn.Module:
    """A randomly initialised backbone whose ``forward`` returns the ``(B, D)`` CLS feature."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown backbone {name!r}; known: {known_backbones()}.")
    return _REGISTRY[name](img_size=img_size, drop_path_rate=drop_path_rate)


def _timm_vit(model_name: str, **overrides) -> Callable[..., torch.nn.Module]:
    def factory(img_size: int, drop_path_rate: float) -> torch.nn.Module:
        return timm.create_model(model_name, pretrained=False, num_classes=0, img_size=img_size,
                                 dynamic_img_size=True, drop_path_rate=drop_path_rate,
                                 **overrides)

    return factory


register("vit_small_patch16_224")(_timm_vit("vit_small_patch16_224"))
register("vit_base_patch16_224")(_timm_vit("vit_base_patch16_224"))
#: A ViT for CPU demos: patch 8 on 32 px crops gives 16 tokens, like ViT-S/16 on 64 px.
_TINY = {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}
register("vit_tiny_demo")(_timm_vit("vit_tiny_patch16_224", **_TINY))
#: The demo's ViT: the same, embedding the mean patch token. In the demo's 50-step runs with
#: the CLS embedding, student outputs stopped depending on the image and teachers drifted to
#: uniform; the mean of 16 patch tokens kept them image-dependent on real, synthetic and
#: mixed data (README "When DINO does not learn").
register("vit_tiny_demo_avgpool")(_timm_vit("vit_tiny_patch16_224", global_pool="avg", **_TINY))
#: The demo's ViT since the toy world's Pet task became learnable: the same, 192 wide. Its
#: mean patch token keeps more of a breed's colour and pattern than the 96-wide one (the
#: real-pretrained backbone's Pet linear top-1 at seed 0: 26 % vs 22 %, 12 breeds), for about
#: 1.6x the training time (DINO's 2048-wide head costs as much as the backbone here).
register("vit_wide_demo_avgpool")(_timm_vit("vit_tiny_patch16_224", global_pool="avg",
                                            **{**_TINY, "embed_dim": 192}))
