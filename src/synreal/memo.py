"""Plan-time memos: results of slow checks that the Snakefile would repeat on every call.

The Snakefile runs before every ``snakemake`` call, dry runs included, and some of what it
checks needs torch, timm or a model library imported (seconds each). A memo is one JSON
file of ``key -> value``; a key must name everything its value depends on (file stamps,
source hashes, library versions), so a stale entry is never found rather than removed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synreal.artifacts import write_json_atomic

#: Snakemake's own folder, under the folder a study runs in.
MEMO_DIR = Path(".snakemake") / "synreal"


def recall(memo: Path, key: str) -> Any:
    """The value remembered under ``key``, or None (no memo, no entry, unreadable file)."""
    return _entries(memo).get(key)


def remember(memo: Path, key: str, value: Any) -> None:
    """Add ``key -> value`` to the memo (rewritten whole, then renamed into place)."""
    write_json_atomic(memo, {**_entries(memo), key: value})


def _entries(memo: Path) -> dict:
    """Everything the memo holds; empty when it is missing or unreadable."""
    try:
        entries = json.loads(Path(memo).read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
