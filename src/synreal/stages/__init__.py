"""Stage registry: every pipeline stage by name, with its version and entry point.

A stage is a pure function ``run(spec, out_dir)`` of its resolved spec (params, upstream
keys, input paths) writing into a fresh directory; :func:`synreal.artifacts.atomic_artifact`
makes that directory appear complete or not at all. Modules here import only light
libraries at import time, so planning a study (which needs every stage's version) is fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synreal.errors import ConfigError


@dataclass(frozen=True)
class Stage:
    """A registered stage.

    Attributes:
        name: CLI and results-folder name.
        version: bump when the stage's outputs change for the same params (changes keys).
        summary: one line for ``python -m synreal --help``.
        params: the dataclass of its parameters (documented fields).
        run: ``run(spec, out_dir)`` fills ``out_dir`` from the spec.
        resumable: work in a directory kept across crashes (shards, checkpoints).
    """

    name: str
    version: int
    summary: str
    params: type
    run: Callable[[dict, Path], None]
    resumable: bool = False


_STAGES: dict[str, Stage] = {}

#: Modules that register stages; imported on first use of the registry.
STAGE_MODULES = (
    "synreal.stages.toyworld",
    "synreal.stages.ingest",
    "synreal.stages.generate",
    "synreal.stages.control",
    "synreal.stages.audit",
    "synreal.stages.pretrain",
    "synreal.stages.realtune",
    "synreal.stages.features",
    "synreal.stages.probe",
    "synreal.stages.probe_images",
    "synreal.stages.knn",
    "synreal.stages.retrieval",
    "synreal.stages.tables",
    "synreal.stages.figures",
)


def register(stage: Stage) -> Stage:
    """Add ``stage`` to the registry (called at import of its module)."""
    _STAGES[stage.name] = stage
    return stage


def _load(only: str | None = None) -> None:
    """Import the stage modules; just ``only``'s when it names one.

    A job needs one stage, and importing all of them costs a second or two per job.
    """
    module = f"synreal.stages.{'tables' if only == 'table' else only}"
    if only is not None and module in STAGE_MODULES:
        importlib.import_module(module)
        return
    for module in STAGE_MODULES:
        importlib.import_module(module)


def known_stages() -> list[str]:
    """Names of every registered stage."""
    _load()
    return sorted(_STAGES)


def get_stage(name: str) -> Stage:
    """The stage called ``name``; an unknown name lists the known ones."""
    if name not in _STAGES:
        _load(name)
    if name not in _STAGES:
        _load()
    if name not in _STAGES:
        raise ConfigError(f"unknown stage {name!r}; known stages: {known_stages()}.")
    return _STAGES[name]
