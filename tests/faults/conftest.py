"""Helpers of the fault-injection tests: Snakemake in its own session, artifact checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from synreal.config import validate_config
from synreal.plan import Plan, build_plan

from ..conftest import MICRO_CONFIG, REPO, snakemake_env

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def snakemake_command(workdir: Path, *args: str, config: Path = MICRO_CONFIG) -> list[str]:
    """The command line of a Snakemake run of this repository in ``workdir``."""
    return [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def snakemake(workdir: Path, *args: str, config: Path = MICRO_CONFIG, fault: str | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run Snakemake in a new session (so ``killgroup`` faults kill it and its jobs only).

    Args:
        fault: value of ``SYNREAL_FAULT`` for this run (see :mod:`synreal.faults`).
    """
    env = snakemake_env()
    env.pop("SYNREAL_FAULT", None)
    if fault:
        env["SYNREAL_FAULT"] = fault
    return subprocess.run(snakemake_command(workdir, *args, config=config), env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=timeout,
                          start_new_session=True)


def resume(workdir: Path, *args: str, config: Path = MICRO_CONFIG) -> subprocess.CompletedProcess:
    """What a user does after the run was killed: ``--unlock``, then ``--rerun-incomplete``."""
    unlock = snakemake(workdir, "--unlock", config=config)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    return snakemake(workdir, "--cores", "2", "--rerun-incomplete", *args, config=config)


def kill_group_when(proc: subprocess.Popen, ready, poll: float = 0.02,
                    timeout: float = 300) -> bool:
    """SIGKILL ``proc``'s process group as soon as ``ready()`` is true; False if it ended first."""
    import time

    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(poll)
    return False


def plan_of(config: Path = MICRO_CONFIG) -> Plan:
    """The study plan (keys of every job) of a config file."""
    return build_plan(validate_config(yaml.safe_load(Path(config).read_text()),
                                      check_paths=False))


def metrics(artifact: Path) -> dict:
    """``metrics.json`` of an evaluation artifact."""
    return json.loads((Path(artifact) / "metrics.json").read_text())


def unfinished_leftovers(results: Path) -> list[Path]:
    """Directories under ``results`` that look like artifacts but are not finished ones.

    Hidden ``.<key>.tmp-*`` / ``.<key>.partial`` work folders never look finished; a visible
    ``<stage>/<key>`` folder must hold ``spec.json`` (a bare one is Snakemake's own output
    folder, cleared by the next run).
    """
    bad = []
    for stage in Path(results).iterdir():
        if not stage.is_dir() or stage.name in ("logs", "benchmarks", "tables", "figures"):
            continue
        for entry in stage.iterdir():
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and any(entry.iterdir()) and not (entry / "spec.json").is_file():
                bad.append(entry)
    return bad
