"""Cheap fingerprints of external dataset folders, for content keys at planning time.

Hashing every byte of a 15k-image dataset on each ``snakemake`` invocation would cost
minutes, so the plan keys an external folder by its file listing (relative path and size).
Ingest then records the exact per-file sha256 in the manifest, and downstream keys use it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def folder_fingerprint(root: Path) -> str:
    """sha256 over the sorted ``(relative path, size)`` of every file under ``root``."""
    root = Path(root)
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            entries.append(f"{full.relative_to(root)}\t{full.stat().st_size}")
    return "fp-" + hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]
