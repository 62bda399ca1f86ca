"""DINO self-attention maps: the last block's attention from the embedding's query, per head.

As in DINO (Fig. 1) and MixDiff (Fig. 10): the last block's attention from the CLS query to
every patch, one map per head, upsampled to the image. A backbone whose embedding is its
mean patch token (timm ``global_pool="avg"``, the demo's tiny ViT) has no trained CLS query;
its map is the attention each patch receives, averaged over the patch queries: how much of
the pooled attention output comes from that patch. Computed from the block's own
``qkv`` projection (a pre-forward hook captures its input), so it matches what the fused
attention kernel computes without asking timm to materialise the matrix.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from synreal.eval.extract import pools_patch_tokens


@torch.no_grad()
def last_block_attention(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(B, heads, h, w)`` attention of the embedding's query (see above) to each patch."""
    attention = model.blocks[-1].attn
    captured = {}
    handle = attention.register_forward_pre_hook(
        lambda module, args: captured.__setitem__("x", args[0]))
    try:
        model.eval()(images)
    finally:
        handle.remove()
    x = captured["x"]
    batch, tokens, _ = x.shape
    qkv = attention.qkv(x).reshape(batch, tokens, 3, attention.num_heads, attention.head_dim)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attention.q_norm(q), attention.k_norm(k)
    weights = ((q * attention.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    prefix = getattr(model, "num_prefix_tokens", 1)
    if pools_patch_tokens(model):
        to_patches = weights[:, :, prefix:, prefix:].mean(dim=2)
    else:
        to_patches = weights[:, :, 0, prefix:]
    side = math.isqrt(to_patches.shape[-1])
    return to_patches.reshape(batch, attention.num_heads, side, side)
