"""The CPU threads a job may use, read without importing torch."""

from __future__ import annotations

import contextlib
import os


def job_threads() -> int:
    """The job's thread budget: ``OMP_NUM_THREADS`` when set, else the usable cores.

    Every rule sets ``OMP_NUM_THREADS`` to its ``threads``; without it, the cores this process
    may use (its affinity: a Slurm job's cgroup, not the whole node).
    """
    with contextlib.suppress(ValueError):
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)
