"""The DINO loss with teacher centering and sharpening (Caron et al. 2021, Algorithm 1).

``H(t, s) = - sum softmax((t - c) / T_t) * log_softmax(s / T_s)``, averaged over every pair
of a teacher view (the 2 global crops) and a *different* student view (all crops). The
centre ``c`` is an EMA of the teacher's batch-mean output (all-reduced across processes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class DINOLoss(nn.Module):
    """Cross-entropy between sharpened, centred teacher and student view distributions.

    Args:
        out_dim: number of prototypes ``K``.
        n_crops: total student views per image (2 global + local).
        teacher_temps: teacher temperature per epoch (see :mod:`synreal.dino.schedules`).
        student_temp: student temperature ``T_s``.
        center_momentum: EMA momentum of the centre.

    Shapes: ``student_out`` ``(n_crops * B, K)``, ``teacher_out`` ``(2 * B, K)``, views
    stacked crop-major (all images' first crop, then all images' second crop, ...).
    """

    def __init__(self, out_dim: int, n_crops: int, teacher_temps: torch.Tensor,
                 student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.n_crops = n_crops
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("teacher_temps", torch.as_tensor(teacher_temps, dtype=torch.float))

    def teacher_probs(self, teacher_out: torch.Tensor, epoch: int) -> torch.Tensor:
        """Centred, sharpened teacher distributions ``(2 * B, K)``."""
        temp = self.teacher_temps[epoch]
        return F.softmax((teacher_out - self.center) / temp, dim=-1)

    def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor,
                epoch: int) -> torch.Tensor:
        """Mean cross-entropy over (teacher view, other student view) pairs; updates the centre."""
        student = (student_out / self.student_temp).chunk(self.n_crops)
        teacher = self.teacher_probs(teacher_out, epoch).detach().chunk(2)
        total, terms = 0.0, 0
        for iq, q in enumerate(teacher):
            for v, s in enumerate(student):
                if v == iq:
                    continue
                total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
                terms += 1
        self.update_center(teacher_out)
        return total / terms

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """EMA of the teacher's batch-mean output, averaged over all processes."""
        batch_center = teacher_out.sum(dim=0, keepdim=True)
        count = torch.tensor([teacher_out.shape[0]], device=teacher_out.device,
                             dtype=batch_center.dtype)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            dist.all_reduce(count)
        batch_center = batch_center / count
        self.center.mul_(self.center_momentum).add_(batch_center * (1 - self.center_momentum))
