"""Stage ``generate``: a synthetic dataset matching a real one (SD / SDXL / variations / toy)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from synreal.generate.params import GenerateParams
from synreal.params import parse_params
from synreal.stages import Stage, register

#: Splits of the real dataset a generator may match or vary; test images are never used.
TRAINING_SPLITS = ("train", "trainval")


def resolve(overrides: dict) -> dict:
    """Full parameter dict (defaults filled, JSON types) of a generator config block."""
    params = parse_params(GenerateParams, overrides, "generators.<name>.params")
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()}


def device(stage: str = "this") -> str:
    """``cuda`` when the job's resources ask for a GPU (refusing if none is usable), else CPU.

    See :func:`synreal.gpus.stage_device`: a GPU job never falls back to the CPU silently.
    """
    from synreal.gpus import stage_device

    return stage_device(stage)


def run(spec: dict, out_dir: Path) -> None:
    """Generate into the resumable work directory; the manifest is written last.

    Several processes (one per GPU, from ``torchrun`` or ``accelerate launch``) split the
    shards between them with no overlap; rank 0 writes the manifest once all are done. With
    a captioner, rank 0 captions the real images first and the others read its captions.
    """
    from synreal.data.manifest import read_manifest
    from synreal.generate.run import generate_dataset, plan_with_captions
    from synreal.ranks import barrier, device_for_rank, process_rank

    params = parse_params(GenerateParams, spec["params"], "generate params")
    real = read_manifest(Path(spec["inputs"]["manifest"]), splits=TRAINING_SPLITS)
    rank, world, _ = process_rank()
    target = device_for_rank(device("generate") == "cuda")
    if world > 1 and params.captioner_path:
        if rank == 0:  # one captioning pass; the cached captions.parquet serves every rank
            plan_with_captions(params, out_dir, real, target)
        barrier()
    # under torchrun / accelerate launch each process makes shards rank, rank + world, ...
    if world > 1:
        print(f"generate: process {rank} of {world} makes every {world}th shard from "
              f"shard {rank} on {target}", flush=True)
    generate_dataset(params, out_dir, source_manifest=real, rank=rank, world_size=world,
                     device=target)
    if world > 1:
        barrier()
        if rank == 0:  # every shard now exists: this only gathers the manifest
            generate_dataset(params, out_dir, source_manifest=real, device=target)
        barrier()


STAGE = register(Stage("generate", 2, "Generate a synthetic dataset matching a real one.",
                       GenerateParams, run, resumable=True))
