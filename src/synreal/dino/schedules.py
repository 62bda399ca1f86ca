"""Schedules of the DINO recipe.

Per iteration: learning rate, weight decay, teacher momentum; per epoch: teacher temperature.
"""

from __future__ import annotations

import numpy as np


def cosine_schedule(base: float, final: float, epochs: int, iters_per_epoch: int,
                    warmup_epochs: int = 0, warmup_start: float = 0.0) -> np.ndarray:
    """``epochs * iters_per_epoch`` values: linear warm-up, then cosine from base to final.

    Matches the official ``utils.cosine_scheduler``: the cosine spans the post-warm-up
    iterations ``i`` as ``final + (base - final) * (1 + cos(pi * i / n)) / 2``.
    """
    warmup_iters = warmup_epochs * iters_per_epoch
    warmup = np.linspace(warmup_start, base, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(epochs * iters_per_epoch - warmup_iters)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * iters / max(len(iters), 1)))
    schedule = np.concatenate((warmup, cosine))
    assert len(schedule) == epochs * iters_per_epoch
    return schedule


def teacher_temperatures(warmup_temp: float, temp: float, warmup_epochs: int,
                         epochs: int) -> np.ndarray:
    """Teacher temperature per epoch: linear warm-up, then constant (official DINOLoss)."""
    return np.concatenate((np.linspace(warmup_temp, temp, warmup_epochs),
                           np.ones(epochs - warmup_epochs) * temp))
