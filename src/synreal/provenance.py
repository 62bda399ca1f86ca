"""What made an artifact: git commit, library versions, host; written into every spec.json."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

TRACKED_LIBRARIES = (
    "torch", "torchvision", "timm", "diffusers", "transformers", "accelerate",
    "numpy", "pandas", "pyarrow", "faiss-cpu", "scikit-learn", "snakemake",
)


def git_commit(repo_dir: Path | None = None) -> str | None:
    """Return ``HEAD``'s commit (with ``-dirty`` if the tree has changes), or None outside git."""
    cwd = repo_dir or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose behaviour affects results."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def provenance() -> dict:
    """The provenance block stored in ``spec.json``."""
    return {
        "git_commit": git_commit(),
        "libraries": library_versions(),
        "host": platform.node(),
        "platform": platform.platform(),
    }
