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
#: The same, 192 wide (the demo's ViT for a while). On the demo's Pet task, read with DINO's
#: linear protocol as its tables are, it gained nothing over the 96-wide one (3 seeds each:
#: 23.9 % vs 23.1-23.7 % top-1, 12 breeds) for 2-3x the training time, so the demo went back.
register("vit_wide_demo_avgpool")(_timm_vit("vit_tiny_patch16_224", global_pool="avg",
                                            **{**_TINY, "embed_dim": 192}))
