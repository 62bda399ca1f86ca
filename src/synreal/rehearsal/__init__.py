"""The rehearsal: a full study's own DAG, run on a CPU in minutes before GPU-hours are spent.

``snakemake --configfile config/studies/<study>.yaml --config rehearsal=true --cores all
[target]`` (or ``make rehearsal``) runs the study file as it stands: the same rules, targets,
architectures (ViT-S/16 at 224 px with its 65,536-prototype head, the study's multi-crop and
augmentation path), pipeline and model classes, and Slurm resources. What changes is what a
CPU cannot afford and nothing else:

- **paths**: the study runs in ``rehearsal/<study>/``, where the study's own relative dataset
  and weights paths hold small data in the datasets' official layouts and tiny random
  weights of every model class it names (:mod:`synreal.rehearsal.fixtures`);
- **counts, steps and epochs**: set in :func:`rehearsal_config` (images, sampling steps,
  epochs, batch sizes, at most :data:`REPLICATES` training seeds), printed as the keys it
  changed;
- **the device**: every stage runs on the CPU (``SYNREAL_FORCE_CPU=1``) whatever its
  resources ask, so the study's GPU counts, partitions and GPU models stay as written and
  its Slurm routing is rehearsed too; each job asks one CPU thread and at most 4 GB.

``tests/workflow/test_rehearsal.py`` fails when any other key differs from the study.
"""

from __future__ import annotations

import copy
import fnmatch
import os
from pathlib import Path
from typing import Any

#: ``SYNREAL_REHEARSAL=1`` turns a README command into its rehearsal, verbatim otherwise.
ENV_REHEARSAL = "SYNREAL_REHEARSAL"
#: Where each study's rehearsal runs, under the working directory: ``rehearsal/<study>/``.
ROOT = "rehearsal"

#: Pretraining: one epoch of 3 steps on the 6-image AFHQ fixture (batch 2).
PRETRAIN = {"epochs": 1, "warmup_epochs": 0, "warmup_teacher_temp_epochs": 0,
            "freeze_last_layer": 0, "batch_size": 2}
#: Diffusion sampling steps: two, so that the multistep schedulers take a second step.
GENERATION_STEPS = 2
#: Training seeds of replicated runs: two, the fewest that exercise the seed-level bootstrap
#: and seed pairing (each seed more adds every replicated run and its evaluations again).
REPLICATES = 2

#: Stages with resources in the config, and the memory a rehearsal job asks for at most.
RESOURCE_STAGES = ("ingest", "generate", "pretrain", "features", "probe_images", "evaluate",
                   "audit", "realtune")
JOB_MB = 4000

#: Config keys the rehearsal may change (fnmatch patterns over dotted paths); anything else
#: that differs from the study is a bug that the rehearsal test reports.
ALLOWED = (
    "rehearsal",
    "generators.*.params.steps",
    "pretrain.params.*epochs", "pretrain.params.freeze_last_layer",
    "pretrain.params.batch_size",
    "pretrain.runs.*.params.*epochs", "pretrain.runs.*.params.batch_size",
    "realtune.ssl.dino.*epochs", "realtune.ssl.dino.freeze_last_layer",
    "realtune.ssl.dino.batch_size", "realtune.ssl.params.fraction",
    "realtune.supervised.params.per_class", "realtune.supervised.params.epochs",
    "realtune.supervised.params.batch_size",
    "evaluation.probe.steps", "evaluation.probe.epochs", "evaluation.dino_linear.epochs",
    "evaluation.probe.dino_epochs", "evaluation.features.batch_size",
    "evaluation.features.num_workers",
    "resources.*.threads", "resources.*.mem_mb",
    "replicates", "replicates.seeds",
)


def requested(config: dict) -> bool:
    """Whether this run is a rehearsal (``--config rehearsal=true`` or the environment)."""
    return bool(config.get("rehearsal")) or os.environ.get(ENV_REHEARSAL) == "1"


def folder_for(configfiles: list[str], cwd: Path | None = None) -> Path:
    """The rehearsal's working folder: ``rehearsal/<study file stem>`` (``demo`` without one).

    Relative to the working directory (``snakemake --directory`` moves it), and that folder
    itself when a job starts inside it, so every job of a run agrees on it.
    """
    cwd = Path(cwd or Path.cwd()).absolute()
    stem = Path(configfiles[-1]).stem if configfiles else "demo"
    if cwd.name == stem and cwd.parent.name == ROOT:
        return cwd
    return cwd / ROOT / stem


def _set(config: dict, dotted: str, value: Any) -> None:
    node = config
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _get(config: dict, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def rehearsal_config(study: dict) -> dict:
    """The study with the rehearsal's counts, steps and epochs (a new dict)."""
    config = copy.deepcopy(study)
    config["rehearsal"] = True
    for name, generator in config.get("generators", {}).items():
        if not str(generator.get("params", {}).get("backend", "sdxl")).startswith("toy"):
            _set(config, f"generators.{name}.params.steps", GENERATION_STEPS)
    if "pretrain" in config:
        for key, value in PRETRAIN.items():
            _set(config, f"pretrain.params.{key}", value)
        for name, run in config["pretrain"].get("runs", {}).items():
            for key in set(run.get("params", {})) & set(PRETRAIN):
                _set(config, f"pretrain.runs.{name}.params.{key}", PRETRAIN[key])
    ssl = _get(config, "realtune.ssl")
    if ssl:
        for key, value in PRETRAIN.items():
            _set(config, f"realtune.ssl.dino.{key}", value)
        # 3 of the fixture's 6 AFHQ training images: at least one batch of 2
        _set(config, "realtune.ssl.params.fraction", 0.5)
    if _get(config, "realtune.supervised"):
        if _get(config, "realtune.supervised.params.per_class", 10) != 0:  # 0: all, as is
            _set(config, "realtune.supervised.params.per_class", 1)
        _set(config, "realtune.supervised.params.epochs", 1)
        _set(config, "realtune.supervised.params.batch_size", 4)
    if "evaluation" in config:
        _set(config, "evaluation.probe.steps", 20)
        if _get(config, "evaluation.probe.train_on") == "images":
            # one epoch of augmented views (each an image's pass through ViT-S/16 on a CPU)
            _set(config, "evaluation.probe.dino_epochs", 1)
        if _get(config, "evaluation.features.num_workers", 0) > 1:
            # one loader worker beside each 1-thread job: the worker path, rehearsed cheaply
            _set(config, "evaluation.features.num_workers", 1)
    _fewer_seeds(config)
    # one CPU and a few GB per job: tiny jobs run side by side on a laptop or a small node;
    # GPU counts, GPU models and partitions stay the study's
    for stage in RESOURCE_STAGES:
        wanted = config.get("resources", {}).get(stage, {})
        _set(config, f"resources.{stage}.threads", 1)
        _set(config, f"resources.{stage}.mem_mb", min(int(wanted.get("mem_mb", JOB_MB)), JOB_MB))
    return config


def _fewer_seeds(config: dict) -> None:
    """At most :data:`REPLICATES` training seeds (the study's first ones)."""
    value = config.get("replicates")
    key = "replicates"
    if isinstance(value, dict):
        value, key = value.get("seeds"), "replicates.seeds"
    if isinstance(value, list) and len(value) > REPLICATES:
        _set(config, key, value[:REPLICATES])
    elif isinstance(value, int) and value > REPLICATES:
        _set(config, key, REPLICATES)


def leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config by dotted path (lists are leaves)."""
    if not isinstance(config, dict):
        return {prefix: config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def changed_keys(study: dict, rehearsal: dict) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (study value, rehearsal value) for every leaf that differs."""
    before, after = leaves(study), leaves(rehearsal)
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def disallowed(changes: dict[str, tuple[Any, Any]]) -> list[str]:
    """Changed keys outside :data:`ALLOWED` (a rehearsal that rehearses something else)."""
    return [key for key in changes if not any(fnmatch.fnmatchcase(key, p) for p in ALLOWED)]


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """The lines the rehearsal prints: what it changed and from what."""
    lines = ["synreal rehearsal: runs the study on the CPU with tiny weights and data; changed:"]
    lines += [f"  {key}: {old!r} -> {new!r}" for key, (old, new) in changes.items()]
    return "\n".join(lines)
