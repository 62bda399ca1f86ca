"""From Snakemake's config to the study that runs: validated, rehearsed if asked, planned.

Snakemake merges ``--config`` over the config files; the Snakefile loads the demo study only
when no ``--configfile`` is given, so a study file is a whole study with no demo setting
leaking in. Its resolved config is the file plus the schema's defaults (tested). A rehearsal
(``--config rehearsal=true``) swaps in the rehearsal's counts and working folder
(:mod:`synreal.rehearsal`), writes its small data and tiny weights, and prints what changed.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from synreal.config import validate_config
from synreal.errors import ConfigError
from synreal.gpu_slots import host_gpus
from synreal.memo import MEMO_DIR

#: Where each run records the config it resolved (inside Snakemake's own folder).
RESOLVED = Path(".snakemake") / "synreal" / "resolved_config.json"
#: The audit weights checks that passed, under the folder the study runs in.
CHECKED_WEIGHTS = MEMO_DIR / "checked_weights.json"
#: Parameter counts of the study's networks, for the disk estimate.
NETWORK_PARAMETERS = MEMO_DIR / "network_parameters.json"


@dataclass
class Study:
    """A validated study about to be planned.

    Attributes:
        config: the resolved config (defaults filled) the plan is built from.
        rehearsal: whether this is the study's CPU rehearsal.
        workdir: the folder to run in (the rehearsal's), or None for the current one.
    """

    config: dict
    rehearsal: bool
    workdir: Path | None
    quiet: bool = False

    def build_plan(self):
        """The content-keyed jobs; call it in the working folder the study runs in.

        Unless quiet (a job re-reading the Snakefile, after the main process checked), it
        records the resolved config, refuses a RealTune subset smaller than a batch, warns
        when the disk looks too small for what the plan still has to write, and prints each
        DINO run's teacher averaging window in epochs, counting the datasets' images once.
        """
        from synreal.dino.teacher_window import (
            check_realtune_schedule,
            training_images,
            window_lines,
        )
        from synreal.plan import build_plan

        plan = build_plan(self.config)
        if not self.quiet:
            RESOLVED.parent.mkdir(parents=True, exist_ok=True)
            RESOLVED.write_text(json.dumps(self.config, indent=1, sort_keys=True))
            from synreal.doctor import check_disk

            counts = training_images(self.config, Path.cwd())
            # a warning, not a refusal: the same Snakefile load serves dry runs, --report
            # and --lint, which write nothing; the doctor's disk check is the refusal
            disk = check_disk(self.config, Path.cwd(), plan, counts,
                              Path.cwd() / NETWORK_PARAMETERS)
            if not disk.ok:
                print(f"synreal warning: disk: {disk.detail}. `python -m synreal doctor "
                      "--configfile <study>` fails on this.", file=sys.stderr)
            check_realtune_schedule(self.config, counts)
            for line in window_lines(self.config, counts):
                print(f"synreal: {line}", file=sys.stderr)
        return plan


def load_study(config: dict, configfiles: list[str], quiet: bool = False) -> Study:
    """Validate Snakemake's ``config``; for a rehearsal also prepare its folder.

    Args:
        config: what Snakemake loaded (the config files, then ``--config`` over them).
        configfiles: the ``--configfile`` paths (empty: the demo study).
        quiet: a job re-reading the Snakefile, not the run's main process: it does not
            check the data and weights again, write the rehearsal's fixtures or print its
            changes.
    """
    from synreal import rehearsal
    from synreal.doctor import preflight

    raw = dict(config)
    # A job re-reading the Snakefile (quiet) trusts the checks its run's main process made
    # before scheduling anything: on Slurm every job re-reads it, and the data and weights
    # checks (a scan of every dataset, the audit models' libraries imported to check their
    # weights) would cost each job seconds before its own work.
    if not rehearsal.requested(raw):
        if quiet:
            return Study(validate_config(raw, check_paths=False), False, None, quiet)
        memo = Path.cwd() / CHECKED_WEIGHTS
        resolved = validate_config(raw, weights_memo=memo)
        preflight(resolved, Path.cwd(), memo)
        return Study(resolved, False, None, quiet)
    # jobs (local, or Slurm's with sbatch --export=ALL) re-read the Snakefile as a rehearsal
    os.environ[rehearsal.ENV_REHEARSAL] = "1"
    study = {k: v for k, v in raw.items() if k != "rehearsal"}
    validate_config(study, check_paths=False)
    rehearsed = rehearsal.rehearsal_config(study)
    workdir = rehearsal.folder_for(configfiles)
    if quiet:
        # Jobs use the fixtures the main process wrote before any job started: a job
        # rewriting them (after a code change mid-run) would swap a dataset under the jobs
        # already reading it.
        resolved = validate_config(rehearsed, base=workdir, check_paths=False)
        return Study(resolved, True, workdir, quiet)
    from synreal.rehearsal.fixtures import prepare

    prepare(validate_config(rehearsed, check_paths=False), workdir)
    memo = workdir / CHECKED_WEIGHTS
    resolved = validate_config(rehearsed, base=workdir, weights_memo=memo)
    preflight(resolved, workdir, memo)
    changes = rehearsal.changed_keys(study, rehearsed)
    print(rehearsal.describe_changes(changes), file=sys.stderr)
    print(f"synreal rehearsal: working folder {workdir}", file=sys.stderr)
    return Study(resolved, True, workdir, quiet)


def requested_gpus(config: dict) -> dict[str, int]:
    """GPUs per job of every stage whose resources ask for some."""
    return {stage: int(r["gpu"]) for stage, r in config["resources"].items() if r.get("gpu")}


def gpu_limit(config: dict, rehearsal: bool) -> int:
    """The ``gpu`` resource of a local run: this host's GPUs (``CUDA_VISIBLE_DEVICES`` or all).

    A rehearsal runs its GPU stages on the CPU, one thread each, so only ``--cores`` bounds
    them: it offers the study's GPUs per job once per CPU. A real run that asks more GPUs
    per job than the host has stops before any job starts.
    """
    gpus = len(host_gpus())
    wanted = requested_gpus(config)
    most = max(wanted.values(), default=0)
    if rehearsal:
        return max(gpus, most * (os.cpu_count() or 1))
    if most > gpus:
        stage = max(wanted, key=wanted.get)
        raise ConfigError(
            f"resources.{stage}.gpu asks for {most} GPU(s) per job but this host has {gpus} "
            f"usable ({'CUDA_VISIBLE_DEVICES' if gpus else 'nvidia-smi lists none'}); run on a "
            f"GPU host or submit with --profile workflow/profiles/slurm, rehearse on the CPU "
            f"with --config rehearsal=true, or set resources.{stage}.gpu: 0 to run it on the "
            f"CPU on purpose.")
    return gpus


def limit_local_gpus(workflow, config: dict, rehearsal: bool, user_set: bool) -> None:
    """Snakemake ``onstart``: cap concurrent GPU jobs of a local run at the host's GPUs.

    Runs once the executor is known and jobs are about to start (never in a dry run): Slurm
    runs are left alone (Slurm places their GPUs), and so is a ``--resources gpu=N`` the
    user gave. A study that asks more GPUs per job than the host has stops here, in one
    sentence, before any job has run.
    """
    if not workflow.local_exec or user_set:
        return
    try:
        limit = gpu_limit(config, rehearsal)
    except ConfigError as error:
        print(f"synreal config error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    workflow.global_resources["gpu"] = limit
    if workflow.scheduler is not None:
        workflow.scheduler.global_resources["gpu"] = limit
        workflow.scheduler.resources["gpu"] = limit
    print(f"synreal: at most {limit} concurrent GPU job(s) on this host", file=sys.stderr)


def enable_warm_starts(workflow, config: dict, rehearsal: bool) -> bool:
    """Snakemake ``onstart``: fork the jobs of a local CPU run from a warm process.

    On for a local run whose every stage runs on the CPU (the demo, a rehearsal, a study with
    ``gpu: 0`` everywhere), where a job's ~4 s of imports are a large share of its work
    (synreal.warm); off on Slurm, for a study that uses GPUs (its jobs run for hours, and
    its benchmark files' CPU and memory columns must be the job's own), and whenever the
    user set ``SYNREAL_WARM`` (``0`` turns it off). Whether it turned them on.
    """
    from synreal.warm import ENV_VAR

    if not workflow.local_exec or ENV_VAR in os.environ:
        return False
    if not rehearsal and any(requested_gpus(config).values()):
        return False
    os.environ[ENV_VAR] = "1"
    print("synreal: warm starts on (jobs fork from a process with torch imported; "
          f"{ENV_VAR}=0 turns them off)", file=sys.stderr)
    return True


#: What a pretrain job that trains nothing (the random-init control) asks a scheduler for.
UNTRAINED_RESOURCES = {"gpu": 0, "runtime": 15, "mem_mb": 8000}


def untrained_resources(full: dict, cpu_partition: str) -> dict:
    """The random-init control's resources, from the pretrain stage's ``full`` ones.

    No GPU (and an empty GPU model: the Slurm executor would ask for ``--gpus=<model>:0``),
    the CPU partition, :data:`UNTRAINED_RESOURCES`' minutes and memory (never more than the
    stage's own).
    """
    light = {**full, **UNTRAINED_RESOURCES, "slurm_partition": cpu_partition,
             "runtime": min(int(full["runtime"]), UNTRAINED_RESOURCES["runtime"]),
             "mem_mb": min(int(full["mem_mb"]), UNTRAINED_RESOURCES["mem_mb"])}
    if "gpu_model" in light:
        light["gpu_model"] = ""
    return light
