"""Benchmark ``make demo``: the cold run in a fresh folder and the re-run with everything cached.

What ``make demo`` does after setup (``snakemake --cores all --profile
workflow/profiles/default``) runs here in a new temporary folder holding a copy of this
checkout's files, those git tracks and the untracked ones it does not ignore (jobs import
that copy's ``src`` through ``PYTHONPATH``), so no result of an earlier run is reused: a
fresh clone's first ``make demo`` with its ``.venv`` already built. The same command then
runs again in the same folder, where every job is cached and Snakemake only checks.

It prints both wall times, the jobs run, the CPU seconds they used (user + system of
snakemake and every job: what the cold run costs whatever else runs on the machine; divided
by the cores it bounds the wall time on idle cores from below), the load average before and
after (the cores may be shared with other work: a loaded machine makes the cold figure
slower), and the ratios to the baseline (254 s cold in a fresh clone on 2 cores, measured
before the demo was made learnable and given replicates and controls) and to the goals
(cold under 300 s, cached under 5 s, issue 21). Where Slurm is installed it also times the
Slurm executor plugin's start-up probe, which every Snakemake call pays (see
:func:`slurm_probe_seconds`), and gives the cached figure without it.

Usage: ``python bench/demo.py [--cores N] [--keep] [--warm auto|off]`` (``--cores``
defaults to ``all``, as ``make demo``; ``--keep`` leaves the folder for inspection;
``--warm off`` runs every job in its own process, the same-run baseline of warm starts).
The CPU seconds include the warm servers' (synreal.warm) and their jobs', read from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: ``make demo`` cold in a fresh clone on 2 cores before issue 21 (seconds).
BASELINE_COLD_S = 254.0
GOAL_COLD_S, GOAL_CACHED_S = 300.0, 5.0


def fresh_checkout(folder: Path) -> None:
    """Copy the checkout's files into ``folder``: what a clone has, no results, no caches."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=REPO, check=True, capture_output=True, text=True)
    for name in filter(None, listed.stdout.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)


def _cpu_seconds() -> float:
    """User + system seconds of every finished child process and its descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _warm_server_cpu_seconds(tmp: Path) -> float:
    """CPU of the run's warm servers (synreal.warm), their jobs included; then stop them.

    A server is detached from the run (its own session), so RUSAGE_CHILDREN misses it and
    the jobs forked from it: read from /proc (the server's own time, and that of the jobs it
    reaped) before it is stopped.
    """
    time.sleep(1.0)  # a server reaps its last job within half a second
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for lock in tmp.glob("synreal-warm-*.lock"):
        try:
            pid = int(lock.read_text())
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    return total


def slurm_probe_seconds() -> float | None:
    """Seconds of the Slurm executor plugin's start-up probe on this host; None without Slurm.

    Every ``snakemake`` call imports its installed executor plugins, and the Slurm plugin
    then runs ``scontrol show config`` (timeout 10 s) to pick a default status command when
    ``sinfo`` is installed. On a cluster that answers in milliseconds and without Slurm it is
    skipped; on a host with Slurm installed but its controller down it waits the whole 10 s,
    in the cached run too.
    """
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return None
    start = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    return time.perf_counter() - start


def run_demo(folder: Path, cores: str, log: Path, warm: str) -> tuple[float, int, float]:
    """Run the demo's snakemake command in ``folder``; wall seconds, jobs run, CPU seconds.

    ``warm``: ``auto`` leaves warm starts to the Snakefile (on for the demo), ``off`` sets
    ``SYNREAL_WARM=0`` (every job in its own process, as before warm starts).
    """
    tmp = folder / "tmp"  # the run's own warm servers, found and measured here
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(folder / "src"), "TMPDIR": str(tmp),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("SYNREAL_WARM", None)
    if warm == "off":
        env["SYNREAL_WARM"] = "0"
    command = ["snakemake", "--cores", cores, "--profile", "workflow/profiles/default"]
    start, cpu = time.perf_counter(), _cpu_seconds()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    cpu += _warm_server_cpu_seconds(tmp)
    if done.returncode != 0:
        sys.exit(f"the demo failed (exit {done.returncode}); its output is in {log}.")
    steps = re.findall(r"(\d+) of (\d+) steps \(100%\) done", log.read_text())
    return seconds, int(steps[-1][1]) if steps else 0, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="all", help="snakemake --cores (make demo: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--warm", choices=("auto", "off"), default="auto",
                        help="warm starts as the Snakefile sets them (auto: on for the demo) "
                             "or off (SYNREAL_WARM=0: every job its own process)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="synreal-demo-bench-"))
    try:
        fresh_checkout(folder)
        load_before = os.getloadavg()[0]
        cold, cold_jobs, cold_cpu = run_demo(folder, args.cores, folder / "cold.log",
                                                args.warm)
        load_after = os.getloadavg()[0]
        cached, cached_jobs, cached_cpu = run_demo(folder, args.cores, folder / "cached.log",
                                                      args.warm)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"warm starts: {args.warm}")
    print(f"cores: {args.cores} ({os.cpu_count()} on this machine); 1-min load average "
          f"{load_before:.1f} before, {load_after:.1f} after the cold run")
    cores = os.cpu_count() if args.cores == "all" else int(args.cores)
    print(f"cold run:   {cold:7.1f} s, {cold_jobs} jobs; baseline {BASELINE_COLD_S:.0f} s -> "
          f"{BASELINE_COLD_S / cold:.2f}x as fast; goal < {GOAL_COLD_S:.0f} s: "
          f"{'met' if cold < GOAL_COLD_S else 'NOT met'}")
    print(f"            {cold_cpu:7.1f} CPU s: at least {cold_cpu / cores:.0f} s on {cores} idle "
          "cores")
    print(f"cached run: {cached:7.1f} s, {cached_jobs} jobs, {cached_cpu:.1f} CPU s; goal < "
          f"{GOAL_CACHED_S:.0f} s: {'met' if cached < GOAL_CACHED_S else 'NOT met'}")
    probe = slurm_probe_seconds()
    if probe is None:
        print("            (no Slurm here: the Slurm plugin's start-up probe is skipped)")
    else:
        print(f"            of which {probe:.1f} s is the Slurm plugin's start-up probe "
              f"(scontrol show config, timeout 10 s; milliseconds where the controller "
              f"answers): {cached - probe:.1f} s without it; goal "
              f"{'met' if cached - probe < GOAL_CACHED_S else 'NOT met'} without it")
    if args.keep:
        print(f"folder kept: {folder}")


if __name__ == "__main__":
    main()
