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

Importing this package is cheap: planning (every Snakefile read, twice per Slurm job) needs
only :class:`GenerateParams`, so each name below loads its module (and pandas, for the
runner and the plan) on first use; torch, diffusers and transformers load only when a
diffusers backend is created.
"""

import importlib

#: Where each public name lives, imported when first asked for.
_MODULE_OF = {
    "is_blank": "blank",
    "SCHEDULERS": "loading", "load_pipeline": "loading", "resolve_model_path": "loading",
    "GenerateParams": "params",
    "ImageJob": "plan", "build_plan": "plan", "select_shards": "plan", "shard_bounds": "plan",
    "compose": "prompts", "prompt_set": "prompts",
    "Backend": "registry", "Generated": "registry", "create": "registry",
    "known_backends": "registry", "register": "registry",
    "MANIFEST_FILE": "run", "generate_dataset": "run", "regenerate_image": "run",
    "image_seed": "seeds",
}


def __getattr__(name: str):
    if name in _MODULE_OF:
        return getattr(importlib.import_module(f"synreal.generate.{_MODULE_OF[name]}"), name)
    raise AttributeError(f"module 'synreal.generate' has no attribute {name!r}")


__all__ = sorted(_MODULE_OF)
