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
#: A student whose image-prototype mutual information is below 1 % of log K (0.055 nats for
#: 256 prototypes) gives nearly every image the same distribution: the demo's MixDiff runs
#: ended at 0.02 nats while their toy variations shared only the class with their source (at
#: 0.09-0.10 since they keep its scene), its real, synthetic and mixed runs at 0.14-0.20, and
#: a randomly initialised student starts at about 0.13. Its EMA teacher follows it there.
STUDENT_FRACTION = 0.01
#: A run's verdict averages its last logged steps: one batch's statistics are noisy (a 6-step
#: RealTune run on 12-image batches read 0.045-0.092 nats of student MI from step to step).
FINAL_WINDOW = 10


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


def collapse_kind(stats: dict[str, float]) -> str | None:
    """``"uniform"`` or ``"dominant"`` (the teacher), ``"student"`` or None when healthy.

    ``"student"`` needs ``stats["student_mi"]``: the student's outputs ignore the image
    while its teacher does not show it yet.
    """
    log_k = stats["log_k"]
    if stats["teacher_entropy"] > UNIFORM_FRACTION * log_k:
        return "uniform"
    if log_k - stats["kl_to_uniform"] < DOMINANT_FRACTION * log_k:
        return "dominant"
    if stats.get("student_mi", math.inf) < STUDENT_FRACTION * log_k:
        return "student"
    return None


def final_collapse(records: list[dict], log_k: float) -> str | None:
    """The run's verdict: :func:`collapse_kind` of its last :data:`FINAL_WINDOW` steps' mean.

    ``records`` are the training log's per-step rows after warm-up (None when there are none).
    """
    window = records[-FINAL_WINDOW:]
    if not window:
        return None
    keys = ("teacher_entropy", "kl_to_uniform", "student_mi")
    mean = {key: sum(r[key] for r in window) / len(window) for key in keys}
    return collapse_kind({**mean, "log_k": log_k})
