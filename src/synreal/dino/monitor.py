"""Collapse monitor: tells whether the teacher is uniform or dominated by one prototype.

Two failure modes of self-distillation (Caron et al. 2021, Sec. 5.3): *uniform* collapse,
where each teacher distribution approaches uniform (per-sample entropy -> log K), and
*dominant* collapse, where one prototype wins for every image (batch-mean distribution
concentrates: its entropy -> 0, KL to uniform -> log K).
"""

from __future__ import annotations

import math

import torch

#: Thresholds as fractions of log K. A teacher whose per-image entropy is 90 % of log K
#: spreads each image over more than e^(0.9 log K) = K^0.9 prototypes (147 of 256, 21,800 of
#: 65,536): its targets no longer tell images apart. A run drifting there ends with a loss
#: above its starting value, as the sharp student is pulled towards near-uniform targets.
UNIFORM_FRACTION = 0.9
DOMINANT_FRACTION = 0.05


@torch.no_grad()
def collapse_stats(teacher_probs: torch.Tensor) -> dict[str, float]:
    """Entropy statistics of centred, sharpened teacher outputs ``(N, K)``."""
    probs = teacher_probs.float().clamp_min(1e-12)
    log_k = math.log(probs.shape[-1])
    entropy = float(-(probs * probs.log()).sum(-1).mean())
    mean = probs.mean(0)
    mean_entropy = float(-(mean * mean.log()).sum())
    return {"teacher_entropy": entropy, "kl_to_uniform": log_k - mean_entropy,
            "log_k": log_k}


def collapse_kind(stats: dict[str, float]) -> str | None:
    """``"uniform"``, ``"dominant"`` or None for healthy outputs."""
    log_k = stats["log_k"]
    if stats["teacher_entropy"] > UNIFORM_FRACTION * log_k:
        return "uniform"
    if log_k - stats["kl_to_uniform"] < DOMINANT_FRACTION * log_k:
        return "dominant"
    return None
