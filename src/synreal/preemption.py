"""A job cut short by Slurm comes back and resumes: checkpoint, exit 75, requeue itself.

When Slurm pre-empts a job or its time limit comes, every process of the job gets SIGTERM
(then SIGKILL after ``KillWait``): pretraining saves a checkpoint and exits with
:data:`REQUEUE_EXIT_CODE`. A pre-empted job is requeued by Slurm (the profile's
``--requeue``); a timed-out one ends ``TIMEOUT``, which Slurm never requeues, and the Slurm
job's own exit status is that of the Snakemake process wrapping the stage, which reports any
failed command as 1, so ``RequeueExit=75`` cannot catch it either. So pretraining warns
itself before the limit (:class:`TimeLimitWarning`, the job's time left read from Slurm):
it saves a checkpoint while the job still runs, exits 75 and requeues its own job
(``scontrol requeue``, allowed by ``--requeue``). The job returns to the queue under the same
id, the Snakemake on the login node keeps waiting on it, and the rerun resumes. Nothing is
requeued outside Slurm, or with ``SYNREAL_SLURM_REQUEUE=0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

#: Exit code of a stage that saved its state after a pre-emption signal: run it again.
REQUEUE_EXIT_CODE = 75
ENV_REQUEUE = "SYNREAL_SLURM_REQUEUE"


def requeue_slurm_job(environ: dict | None = None) -> bool:
    """Put this process's Slurm job back in the queue; True when Slurm accepted it.

    Only the job's first process (``SLURM_PROCID`` 0, and rank 0 under torchrun) asks, so a
    multi-GPU job is requeued once.
    """
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID")
    if not job or env.get(ENV_REQUEUE, "1") == "0":
        return False
    if env.get("SLURM_PROCID", "0") != "0" or env.get("RANK", "0") != "0":
        return False
    scontrol = shutil.which("scontrol", path=env.get("PATH"))
    if scontrol is None:
        print("synreal: pre-empted under Slurm but scontrol is not on PATH; the job is not "
              "requeued (Snakemake's retries will resubmit it)", file=sys.stderr)
        return False
    proc = subprocess.run([scontrol, "requeue", job], capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        print(f"synreal: scontrol requeue {job} failed ({proc.stderr.strip()}); Snakemake's "
              "retries will resubmit the job", file=sys.stderr)
        return False
    print(f"synreal: Slurm job {job} requeued; it resumes from its checkpoint",
          file=sys.stderr, flush=True)
    return True


def parse_time_left(text: str) -> float | None:
    """Seconds in Slurm's ``%L`` format (``[D-]HH:MM:SS``, ``MM:SS``); None when unlimited."""
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "NOT_SET", "INVALID"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return ((int(days) if days else 0) * 24 + hours) * 3600 + minutes * 60 + seconds


class TimeLimitWarning:
    """Says when a Slurm job is about to reach its time limit, before Slurm's SIGTERM.

    The job's time left is read from ``squeue`` when training starts and again every
    ``refresh_s`` (an admin may change the limit of a running job); in between, :meth:`near`
    only compares the clock with the deadline. Near means less than ``margin_s`` left, or
    less than three of the longest steps seen: time to save a checkpoint and requeue while
    the job still runs, so that it comes back under the same job id instead of ending
    ``TIMEOUT``. Outside Slurm it never fires.
    """

    def __init__(self, read_left=None, margin_s: float = 120.0, refresh_s: float = 60.0,
                 clock=None) -> None:
        import time

        self._read = read_left or (lambda: None)
        self._clock = clock or time.monotonic
        self.margin_s, self.refresh_s = margin_s, refresh_s
        self._last = self._read_at = self._clock()
        self._longest = 0.0
        self.deadline = self._deadline(self._last)

    def _deadline(self, now: float) -> float | None:
        left = self._read()
        return None if left is None else now + left

    @classmethod
    def for_this_job(cls, environ: dict | None = None) -> TimeLimitWarning:
        """The warning for the Slurm job this process runs in (never fires outside one).

        ``SYNREAL_TIME_LIMIT_MARGIN_S`` (120) and ``SYNREAL_TIME_LIMIT_REFRESH_S`` (60) tune it.
        """
        env = os.environ if environ is None else environ
        job, squeue = env.get("SLURM_JOB_ID"), shutil.which("squeue", path=env.get("PATH"))
        margin = float(env.get("SYNREAL_TIME_LIMIT_MARGIN_S", "120"))
        refresh = float(env.get("SYNREAL_TIME_LIMIT_REFRESH_S", "60"))
        if not job or squeue is None:
            return cls(None, margin, refresh)

        def read_left() -> float | None:
            proc = subprocess.run([squeue, "-h", "-j", job, "-o", "%L"], capture_output=True,
                                  text=True, timeout=60, check=False)
            try:
                return parse_time_left(proc.stdout.splitlines()[0]) if proc.stdout else None
            except ValueError:
                return None

        return cls(read_left, margin, refresh)

    def near(self) -> bool:
        """Call once per step: True when the time limit is closer than the margin."""
        now = self._clock()
        self._longest = max(self._longest, now - self._last)
        self._last = now
        if now - self._read_at >= self.refresh_s:
            self.deadline, self._read_at = self._deadline(now), now
        if self.deadline is None:
            return False
        return self.deadline - now < max(self.margin_s, 3 * self._longest)
