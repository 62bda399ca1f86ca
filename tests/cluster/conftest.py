"""A real single-node Slurm cluster for the tests in this folder (scripts/slurm-local.sh).

The cluster is started once, unless it already runs (then it is left running), and stopped
by the pids the script recorded when the last pytest process using it is done: under
pytest-xdist each worker is a session of its own, and one worker's end must not stop the
cluster under another's running test. Each session holds a lease (a file named by its pid)
in LEASES; the session that finds none left stops the cluster if a test session started it.
Where this machine cannot run Slurm (not root, nothing to install it with, daemons that do
not start) every test here is skipped with the reason; set SYNREAL_REQUIRE_SLURM=1 to make
that a failure instead (CI).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import REPO, snakemake_env

SCRIPT = REPO / "scripts" / "slurm-local.sh"
PROFILE = REPO / "workflow" / "profiles" / "slurm-test"
STATE_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/tmp/synreal-slurm"))
JOBCOMP_LOG = STATE_DIR / "jobcomp.log"
START_TIMEOUT_S = 300  # the first start installs packages
RUN_TIMEOUT_S = 300  # one snakemake run on the cluster; a hang fails the test, not CI
#: Leases of the pytest sessions using the cluster, and the mark that a test session started
#: it (outside STATE_DIR, which the script wipes when it starts the cluster).
LEASES = STATE_DIR.with_name(STATE_DIR.name + "-leases")
STARTED_BY_TESTS = LEASES / "started-by-tests"


def unavailable(reason: str) -> None:
    """Skip with ``reason``, or fail where the environment says Slurm must work."""
    if os.environ.get("SYNREAL_REQUIRE_SLURM") == "1":
        pytest.fail(f"SYNREAL_REQUIRE_SLURM=1, but the local Slurm cluster is unusable: {reason}")
    pytest.skip(f"local Slurm cluster unavailable: {reason}")


def local_slurm(command: str, timeout: int) -> subprocess.CompletedProcess:
    """Run ``scripts/slurm-local.sh <command>`` under ``timeout -k``; never raises."""
    return subprocess.run(["timeout", "-k", "10", str(timeout), "bash", str(SCRIPT), command],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running local Slurm cluster; yields its state directory."""
    if not sys.platform.startswith("linux"):
        unavailable(f"needs Linux, this is {sys.platform}")
    if os.geteuid() != 0:
        unavailable(f"scripts/slurm-local.sh needs root to install and start daemons "
                    f"(uid {os.geteuid()})")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        unavailable("Slurm is not installed and there is no apt-get to install it")
    lease = LEASES / str(os.getpid())
    with _leases_locked():
        if local_slurm("status", 30).returncode != 0:
            proc = local_slurm("start", START_TIMEOUT_S)
            if proc.returncode != 0:
                local_slurm("stop", 60)
                tail = (proc.stdout + proc.stderr).strip()[-1500:]
                unavailable(f"scripts/slurm-local.sh start exited {proc.returncode}:\n{tail}")
            STARTED_BY_TESTS.touch()
        lease.touch()
    yield STATE_DIR
    with _leases_locked():
        lease.unlink(missing_ok=True)
        if _live_leases() or not STARTED_BY_TESTS.exists():
            return
        STARTED_BY_TESTS.unlink()
        proc = local_slurm("stop", 90)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@contextlib.contextmanager
def _leases_locked():
    """The lease folder, locked against the other pytest sessions' start and stop."""
    LEASES.mkdir(parents=True, exist_ok=True)
    with (LEASES / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _live_leases() -> list[Path]:
    """Leases of pytest sessions still running (a killed session's lease is dropped)."""
    live = []
    for lease in LEASES.iterdir():
        if lease.name.isdigit():
            if Path(f"/proc/{lease.name}").exists():
                live.append(lease)
            else:
                lease.unlink(missing_ok=True)
    return live


def start_on_slurm(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile",
                   timeout: int = RUN_TIMEOUT_S, profile: Path = PROFILE,
                   env: dict | None = None) -> subprocess.Popen:
    """Start ``snakefile`` in ``workdir`` through ``profile`` (the slurm-test one by default).

    ``env`` adds variables to the submitting environment, which every job inherits.
    """
    snakemake = Path(sys.executable).parent / "snakemake"
    command = ["timeout", "-k", "10", str(timeout), str(snakemake), "-s", str(snakefile),
               "--directory", str(workdir), "--profile", str(profile), *args]
    env = {**snakemake_env(), **(env or {})}
    env.pop("CUDA_VISIBLE_DEVICES", None)  # jobs inherit this environment; Slurm must set it
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=workdir)


def finish(proc: subprocess.Popen, timeout: int = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Wait for a :func:`start_on_slurm` run; a run its ``timeout`` killed fails the test."""
    stdout, stderr = proc.communicate(timeout=timeout + 30)
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if proc.returncode in (124, 137):
        pytest.fail(f"snakemake on Slurm did not finish within {timeout} s:\n"
                    f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc


def run_on_slurm(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile",
                 timeout: int = RUN_TIMEOUT_S, profile: Path = PROFILE,
                 env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``snakefile`` in ``workdir`` through ``profile``, killed after ``timeout``."""
    return finish(start_on_slurm(workdir, *args, snakefile=snakefile, timeout=timeout,
                                 profile=profile, env=env), timeout)


def scontrol_job(job_id: str) -> str:
    """``scontrol show job -d`` of a job slurmctld still knows (finished: MinJobAge seconds)."""
    return subprocess.run(["scontrol", "show", "job", "-d", job_id], capture_output=True,
                          text=True, check=True, timeout=30).stdout


def completed_jobs(job_ids: set[str], wait_s: float = 10.0) -> dict[str, dict[str, str]]:
    """Records of ``job_ids`` from Slurm's job completion log, waiting briefly for the last."""
    deadline = time.monotonic() + wait_s
    while True:
        records = {}
        for line in JOBCOMP_LOG.read_text().splitlines():
            record = dict(field.split("=", 1) for field in line.split() if "=" in field)
            if record.get("JobId") in job_ids:
                records[record["JobId"]] = record
        if set(records) == job_ids or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


def job_gres(job_id: str) -> str:
    """The GRES Slurm allocated to a job (``gpu:testgpu:1`` or ``(null)``), from scontrol.

    Without slurmdbd the job completion log records no GRES (``gres/gpu`` as an accounting
    TRES needs the database), but slurmctld keeps finished jobs for ``MinJobAge`` seconds.
    """
    details = scontrol_job(job_id)
    match = re.search(r"JOB_GRES=(\S+)", details)
    assert match, details
    return match.group(1)
