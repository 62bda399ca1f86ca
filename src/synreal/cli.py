"""Command line: ``python -m synreal <stage> --spec-json JSON --out DIR``.

Every stage is runnable on its own as a GPU job script. Snakemake rules call exactly this,
so a job can be re-run by hand by copying its command from the log. User errors print one
sentence and exit with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from synreal.errors import EXIT_USER_ERROR, ConfigError, SynrealError
from synreal.params import describe
from synreal.preemption import REQUEUE_EXIT_CODE, requeue_slurm_job
from synreal.stages import get_stage, known_stages

#: Stages whose output is a set of files in a shared folder rather than a keyed artifact.
UNKEYED = {"table", "figures"}


def _is_stage(name: str) -> bool:
    try:
        get_stage(name)
    except ConfigError:
        return False
    return True


def _read_spec(value: str) -> dict:
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--spec-json is not valid JSON ({error}).") from None
    if not isinstance(spec, dict) or "params" not in spec:
        raise ConfigError("--spec-json must be an object with at least a 'params' key.")
    return spec


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The CLI parser: one sub-command per registered stage (or just ``only``, for a job)."""
    parser = argparse.ArgumentParser(
        prog="python -m synreal",
        description="Run one synreal stage on a resolved spec (as Snakemake does).",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name in [only] if only else known_stages():
        stage = get_stage(name)
        command = sub.add_parser(
            name, help=stage.summary, description=stage.summary,
            epilog="params (inside --spec-json):\n" + describe(stage.params),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_argument("--spec-json", required=True,
                             help="resolved spec as JSON, or @file.json")
        command.add_argument("--out", required=True, type=Path,
                             help="output directory (results/<stage>/<key> for keyed stages)")
    return parser


def _print_placement(name: str) -> None:
    """Where this job runs, for its log: GPUs asked and seen, Slurm job, forced CPU."""
    import os

    parts = [f"{key}={os.environ[key]}" for key in
             ("SYNREAL_GPUS", "CUDA_VISIBLE_DEVICES", "SYNREAL_FORCE_CPU", "SLURM_JOB_ID")
             if key in os.environ]
    if parts:
        print(f"synreal {name}: {' '.join(parts)}", flush=True)


def run_stage(name: str, spec: dict, out: Path) -> None:
    """Run stage ``name`` so that ``out`` appears complete or not at all."""
    from synreal.artifacts import atomic_artifact
    from synreal.gpus import requested_gpus, stage_device
    from synreal.ranks import process_rank

    stage = get_stage(name)
    if requested_gpus():
        stage_device(name)  # a GPU job with no usable GPU stops here, before any output
    _print_placement(name)
    if name in UNKEYED:
        from synreal.artifacts import storage_error

        try:
            stage.run(spec, out)
        except OSError as error:
            sentence = storage_error(error, Path(out))
            if sentence is None:
                raise
            raise sentence from None
        return
    rank, world, _ = process_rank()
    if world > 1 and stage.resumable and rank != 0:
        # one of several processes of a multi-GPU job: work in the shared work directory;
        # rank 0 waits for the others in the stage and then finishes the artifact
        from synreal.artifacts import partial_dir

        work = partial_dir(Path(out))
        work.mkdir(parents=True, exist_ok=True)
        stage.run(spec, work)
        return
    with atomic_artifact(out, spec, resumable=stage.resumable) as tmp:
        stage.run(spec, tmp)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the stage, map user errors to one line and exit code 2."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:  # not a stage: checks a host before a study runs there
        from synreal.doctor import main as doctor

        return doctor(argv[1:])
    first = argv[0] if argv else None
    only = first if first and not first.startswith("-") and _is_stage(first) else None
    args = build_parser(only).parse_args(argv)
    start = time.perf_counter()
    try:
        run_stage(args.stage, _read_spec(args.spec_json), args.out)
    except SystemExit as stop:
        # state saved before the time limit: back in the queue under the same job id
        if stop.code == REQUEUE_EXIT_CODE and getattr(stop, "requeue_self", False):
            requeue_slurm_job()
        raise
    except SynrealError as error:
        # on a line of its own: a progress bar may have left the cursor mid-line
        print(f"\nsynreal {args.stage}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"synreal {args.stage}: wrote {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
