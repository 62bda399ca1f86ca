"""Collapse monitor: a uniform or single-prototype teacher, or a student ignoring the image.

Two failure modes of self-distillation (Caron et al. 2021, Sec. 5.3): *uniform* collapse,
where each teacher distribution approaches uniform (per-sample entropy -> log K), and
*dominant* collapse, where one prototype wins for every image (batch-mean distribution
concentrates: its entropy -> 0, KL to uniform -> log K).

Both modes end in outputs that no longer depend on the image. The mutual information
between image and prototype, ``I = H(batch mean) - mean per-image H``, measures that
directly (0 when every image gets the same distribution, at most log K). It is logged for
the teacher and for the student: on small datasets the student's head can stop depending
on the image within an epoch, long before the teacher, an EMA of it, shows either mode,
and while the centre still lags the teacher's mean its entropy can look healthy.
:mod:`synreal.dino.verdict` names the failure mode from these statistics.
"""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def collapse_stats(teacher_probs: torch.Tensor) -> dict[str, float]:
    """Entropy statistics of centred, sharpened teacher outputs ``(N, K)``."""
    entropy, mean_entropy = _entropies(teacher_probs)
    log_k = math.log(teacher_probs.shape[-1])
    return {"teacher_entropy": entropy, "kl_to_uniform": log_k - mean_entropy,
            "teacher_mi": mean_entropy - entropy, "log_k": log_k}


@torch.no_grad()
def mutual_information(probs: torch.Tensor) -> float:
    """Image-prototype mutual information (nats) of per-image distributions ``(N, K)``."""
    entropy, mean_entropy = _entropies(probs)
    return mean_entropy - entropy


def _entropies(probs: torch.Tensor) -> tuple[float, float]:
    """(mean per-row entropy, entropy of the mean row) of ``(N, K)`` distributions.

    Both come back to the host together: one device sync per call on the training step.
    """
    probs = probs.float().clamp_min(1e-12)
    mean = probs.mean(0)
    entropy, mean_entropy = torch.stack([-(probs * probs.log()).sum(-1).mean(),
                                         -(mean * mean.log()).sum()]).tolist()
    return entropy, mean_entropy
