"""A job cut short by Slurm comes back and resumes: checkpoint, exit 75, requeue itself.

When Slurm pre-empts a job or its time limit comes, every process of the job gets SIGTERM
(then SIGKILL after ``KillWait``). Pretraining saves a checkpoint and exits with
:data:`REQUEUE_EXIT_CODE`. But the Slurm job's own exit status is that of the Snakemake
process wrapping the stage, which reports any failed command as 1, so neither Slurm's
``RequeueExit=75`` nor the profile's ``--requeue`` (pre-emption only) would bring a job that
timed out back. So the stage requeues its own job (``scontrol requeue``, allowed because the
profile submits with ``--requeue``): it returns to the queue under the same job id, the
Snakemake on the login node keeps waiting on that id, and the rerun resumes from the
checkpoint. Nothing is requeued outside Slurm, or when ``SYNREAL_SLURM_REQUEUE=0``.
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
