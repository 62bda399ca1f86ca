"""Shared fixtures: the repository root, the micro config, and a Snakemake runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
MICRO_CONFIG = REPO / "tests" / "configs" / "micro.yaml"


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
    return subprocess.run(command, capture_output=True, text=True,
                          env={**snakemake_env(), **(env or {})}, timeout=timeout, cwd=workdir)
