"""GPUs of one host shared between concurrent Snakemake jobs, each seeing only its own.

``snakemake --cores all`` on a 4-GPU workstation may start several GPU jobs at once. The
Snakefile caps them with a ``gpu`` resource equal to the host's GPU count
(:func:`host_gpus`), and every GPU job starts through ``python -m synreal.gpu_slots N --
<command>``, which claims N free GPUs with one lock file each, sets ``CUDA_VISIBLE_DEVICES``
to them and replaces itself with the command. The locks are ``flock`` locks held by the
command's own process (the file descriptors survive ``exec``), so they are released when the
job ends however it ends, ``kill -9`` included. Under Slurm (``SLURM_JOB_ID`` set) Slurm
already hands each job its GPUs, and the command runs unchanged.

Example:
    ``CUDA_VISIBLE_DEVICES=0,1 python -m synreal.gpu_slots 1 -- nvidia-smi -L`` lists
    GPU 0, or GPU 1 while another job holds GPU 0.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synreal.gpus import ENV_FORCE_CPU

#: Seconds between attempts while every GPU is taken (Snakemake's cap makes this rare).
POLL_S = 0.5


def host_gpus() -> list[str]:
    """The GPU ids jobs on this host may use.

    ``CUDA_VISIBLE_DEVICES`` when it is set (the user's choice of GPUs, possibly empty),
    else every GPU ``nvidia-smi -L`` lists; none without a driver.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [part.strip() for part in visible.split(",") if part.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def lock_dir() -> Path:
    """Where this user's GPU locks live on this host (shared by every checkout and run)."""
    folder = Path(tempfile.gettempdir()) / f"synreal-gpu-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def claim(count: int, gpus: list[str], folder: Path, timeout_s: float | None = None) -> list[int]:
    """Lock ``count`` of ``gpus``; return the open lock file descriptors (order of ``gpus``).

    Waits while fewer are free. The descriptors are inheritable: an ``exec``-ed command
    keeps the GPUs until it exits.
    """
    if count > len(gpus):
        raise SystemExit(f"synreal gpu_slots: the job asks for {count} GPU(s) but this host "
                         f"offers {len(gpus)} ({', '.join(gpus) or 'none'}); lower the stage's "
                         f"resources gpu or run it where there are enough.")
    start = time.monotonic()
    while True:
        held: list[tuple[str, int]] = []
        for gpu in gpus:
            fd = os.open(folder / f"gpu{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((gpu, fd))
            if len(held) == count:
                for _, kept in held:
                    os.set_inheritable(kept, True)
                os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(g for g, _ in held)
                return [fd for _, fd in held]
        for _, fd in held:
            os.close(fd)
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {count} free GPU(s) among {gpus} after {timeout_s} s")
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> None:
    """``python -m synreal.gpu_slots N -- command ...``: run ``command`` on N claimed GPUs."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m synreal.gpu_slots N -- command [args ...]")
    count, command = int(argv[0]), argv[2:]
    # Slurm hands each job its GPUs; the rehearsal runs GPU stages on the CPU (synreal.gpus)
    if count > 0 and "SLURM_JOB_ID" not in os.environ and os.environ.get(ENV_FORCE_CPU) != "1":
        claim(count, host_gpus(), lock_dir())
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
