"""Shared fixtures: the repository root, the micro config, and a Snakemake runner."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MICRO_CONFIG = REPO / "tests" / "configs" / "micro.yaml"


#: The longest test files, started first. Under ``pytest -n 2 --dist loadfile
#: --no-loadscope-reorder`` (the Makefile's; without the flag xdist orders files by their
#: number of tests) each of the first two files goes to its own worker at once, so the
#: suite's longest runs overlap with everything else instead of starting last (the Slurm
#: rehearsal alone takes most of the slow run).
RUN_FIRST = ("tests/cluster/test_rehearsal_slurm.py", "tests/workflow/test_rehearsal.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move :data:`RUN_FIRST`'s tests to the front, keeping every other order."""
    def rank(item: pytest.Item) -> int:
        path = item.path.resolve().relative_to(REPO).as_posix()
        return RUN_FIRST.index(path) if path in RUN_FIRST else len(RUN_FIRST)
    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Run the tests' own torch work on one thread (module fixtures included).

    The suite runs two xdist workers on two cores, beside the Snakemake jobs some tests
    start: a worker with torch's default thread pool oversubscribes the cores, and OpenMP's
    barriers then stall (the RealTune schedule tests took 340-414 s in the slow run beside
    the Slurm rehearsal, 28-33 s alone). Tiny test models gain nothing from a second thread.
    """
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def micro_config() -> dict:
    """The micro study config as a dict (fresh copy per test)."""
    return yaml.safe_load(MICRO_CONFIG.read_text())


def snakemake_env() -> dict:
    """Environment in which ``python`` is this interpreter (as ``make demo`` arranges)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_snakemake(workdir: Path, *args: str, config: Path = MICRO_CONFIG,
                  timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile in ``workdir`` with ``config``; never raises on failure.

    ``env`` adds variables to the environment (e.g. ``SNAKEMAKE_OUTPUT_CACHE``).
    """
    command = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--configfile", str(config), *args]
    proc = subprocess.run(command, capture_output=True, text=True,
                          env={**snakemake_env(), **(env or {})}, timeout=timeout, cwd=workdir)
    proc.workdir = Path(workdir)  # where its job logs are, for why_snakemake_failed
    return proc


def why_snakemake_failed(proc: subprocess.CompletedProcess, workdir: Path | None = None,
                         tail: int = 3000) -> str:
    """What a failed Snakemake run printed, each failed job's log tail, and the free disk.

    A job's own error is in its log file, not in Snakemake's output; CI prints only what an
    assertion says, so the assertion must carry it.
    """
    workdir = Path(workdir or proc.workdir)
    output = (proc.stdout or "") + (proc.stderr or "")
    parts = [output[-tail:]]
    logs = re.findall(r"log: (\S+) \(check log file", output)
    for log in dict.fromkeys(logs):
        path = Path(workdir) / log
        text = path.read_text(errors="replace") if path.is_file() else "(no log file)"
        parts.append(f"--- {log} ---\n{text[-tail:]}")
    free = shutil.disk_usage(workdir).free / 2**30
    parts.append(f"--- {free:.1f} GiB free at {workdir} ---")
    return "\n".join(parts)
