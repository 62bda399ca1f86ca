"""Content keys: the short hash that names every artifact directory.

``key = sha256(canonical JSON of {stage, version, params, upstream})[:KEY_LENGTH]``.
Canonical JSON sorts keys and has no whitespace, so the same spec always gives the same key
on any machine and Python version; a change to any parameter or upstream key changes it.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

KEY_LENGTH = 12


def _normalise(value: Any) -> Any:
    """Make a value JSON-canonical: tuples become lists, integral floats stay floats."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite float {value!r} cannot be part of a content key")
    return value


def canonical_json(value: Any) -> str:
    """Serialise ``value`` deterministically (sorted keys, no whitespace, UTF-8 kept)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_key(stage: str, version: int, params: dict, upstream: dict[str, str]) -> str:
    """Return the short content key of a stage run.

    Args:
        stage: stage name, e.g. ``"ingest"``.
        version: the stage's logic version; bump it when outputs change for the same params.
        params: the resolved (defaults filled in) parameters of the stage.
        upstream: role -> content key (or dataset fingerprint) of every input artifact.
    """
    payload = {"stage": stage, "version": version, "params": params, "upstream": upstream}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:KEY_LENGTH]
