"""The DINO projection head (Caron et al. 2021, Sec. 3 and Appendix).

A 3-layer MLP (hidden 2048, GELU) to a 256-d bottleneck, L2 normalisation, then a
weight-normalised linear layer to ``out_dim`` prototypes whose scale can be frozen
(``norm_last_layer``). Weight normalisation uses ``torch.nn.utils.parametrizations``
so the module can be copied; the teacher is still built as a new instance and loaded
from the student's state, which is how the official code does it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


class DINOHead(nn.Module):
    """``(B, in_dim)`` backbone features -> ``(B, out_dim)`` prototype logits.

    Example:
        >>> head = DINOHead(384, 65536)
        >>> head(torch.randn(2, 384)).shape
        torch.Size([2, 65536])
    """

    def __init__(self, in_dim: int, out_dim: int, use_bn: bool = False,
                 norm_last_layer: bool = True, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dims = [in_dim, hidden_dim, hidden_dim]
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), *([nn.BatchNorm1d(b)] if use_bn else []), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        scale = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            scale.fill_(1.0)
        scale.requires_grad = not norm_last_layer

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prototype logits ``(B, out_dim)`` of backbone features ``(B, in_dim)``."""
        x = nn.functional.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


class MultiCropNetwork(nn.Module):
    """Backbone + head over a list of crops, one backbone pass per crop resolution.

    Crops of equal size are concatenated so a forward costs one pass per resolution
    (2 global + n local crops -> 2 passes), as in the official ``MultiCropWrapper``.
    Returns ``(sum of batch sizes, out_dim)`` logits, crops in input order.
    """

    def __init__(self, backbone: nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Head logits of every crop, crops in input order."""
        outputs, start = [], 0
        sizes = [c.shape[-1] for c in crops]
        while start < len(crops):
            end = start
            while end < len(crops) and sizes[end] == sizes[start]:
                end += 1
            outputs.append(self.backbone(torch.cat(crops[start:end])))
            start = end
        return self.head(torch.cat(outputs))
