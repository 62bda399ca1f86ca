"""Synthetic dataset generation behind one registry of backends.

Backends: SD / SDXL / SD image variations (diffusers) and the toy world's biased generator.

Public API::

    GenerateParams                 every control, documented (synreal.generate.params)
    generate_dataset(params, out_dir, source_manifest=..., shard_range=..., rank=...,
                     world_size=..., device=...) -> manifest DataFrame
    regenerate_image(params, image_id) -> PIL image
    register / create / known_backends   the backend registry
    build_plan / ImageJob           the per-image plan (ids, prompts, seeds)
    prompt_set / compose            class templates and SynBench rare-scenario phrases
    image_seed                      per-image seeds
    load_pipeline / resolve_model_path   local-only diffusers loading

Importing this package is cheap: torch, diffusers and transformers load only when a
diffusers backend is created.
"""

from synreal.generate.blank import is_blank
from synreal.generate.loading import SCHEDULERS, load_pipeline, resolve_model_path
from synreal.generate.params import GenerateParams
from synreal.generate.plan import ImageJob, build_plan, select_shards, shard_bounds
from synreal.generate.prompts import compose, prompt_set
from synreal.generate.registry import Backend, Generated, create, known_backends, register
from synreal.generate.run import MANIFEST_FILE, generate_dataset, regenerate_image
from synreal.generate.seeds import image_seed

__all__ = [
    "MANIFEST_FILE", "SCHEDULERS", "Backend", "GenerateParams", "Generated", "ImageJob",
    "build_plan", "compose", "create", "generate_dataset", "image_seed", "is_blank",
    "known_backends", "load_pipeline", "prompt_set", "register", "regenerate_image",
    "resolve_model_path", "select_shards", "shard_bounds",
]
