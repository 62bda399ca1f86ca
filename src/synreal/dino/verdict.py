"""A DINO run's collapse verdict from its logged statistics (no torch: the report reads it).

:mod:`synreal.dino.monitor` computes the statistics on the training step; this module names
the failure mode of one step (:func:`collapse_kind`) and of a whole run, from its training
log (:func:`run_verdict`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

#: The per-step training log of a run, in its work directory.
LOG_FILE = "train_log.jsonl"

#: Thresholds as fractions of log K. A teacher whose per-image entropy is 90 % of log K
#: spreads each image over more than e^(0.9 log K) = K^0.9 prototypes (147 of 256, 21,800 of
#: 65,536): its targets no longer tell images apart. A run drifting there ends with a loss
#: above its starting value, as the sharp student is pulled towards near-uniform targets.
UNIFORM_FRACTION = 0.9
DOMINANT_FRACTION = 0.05
#: A student whose image-prototype mutual information is below 1 % of log K (0.055 nats for
#: 256 prototypes) gives nearly every image the same distribution: the demo's MixDiff runs
#: ended at 0.02 nats while their toy variations shared only the class with their source (at
#: 0.09-0.11 since they keep its scene), its real, synthetic and mixed runs at 0.14-0.20, and
#: a randomly initialised student starts at about 0.13. Its EMA teacher follows it there.
STUDENT_FRACTION = 0.01
#: A run's verdict averages its last logged steps: one batch's statistics are noisy (a 6-step
#: RealTune run on 12-image batches read 0.045-0.092 nats of student MI from step to step).
FINAL_WINDOW = 10


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

    ``records`` are the training log's per-step rows after warm-up; None when there are none.
    """
    window = records[-FINAL_WINDOW:]
    if not window:
        return None
    keys = ("teacher_entropy", "kl_to_uniform", "student_mi")
    mean = {key: sum(r[key] for r in window) / len(window) for key in keys}
    return collapse_kind({**mean, "log_k": log_k})


def run_verdict(log_path: Path, warmup_epochs: int, out_dim: int) -> str | None:
    """:func:`final_collapse` of a training log file's steps after warm-up."""
    with open(log_path) as log:
        records = [json.loads(line) for line in log if line.strip()]
    return final_collapse([r for r in records if r["epoch"] >= warmup_epochs],
                          math.log(out_dim))
