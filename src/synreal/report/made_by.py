"""How a generated dataset was made, in words, from its generate job's resolved params.

The datasets table's "made by" column: model (and refiner, replacement VAE), prompts,
guidance, sampler and sizes of a diffusion set; for the toy backends the ranges the biased
renderer drew from at the set's guidance scale (the toy backend widens or narrows them with
guidance, :func:`synreal.generate.toy_guidance.guidance_factor`).
"""

from __future__ import annotations

from collections.abc import Iterable

from synreal.generate.params import GenerateParams
from synreal.params import parse_params


def generation_text(params: dict, class_names: Iterable[str] = ()) -> str:
    """One line: what made the images of a generate job with these resolved ``params``.

    ``class_names``: the set's classes (the toy backends confuse breeds, not coarse classes).
    """
    settings = parse_params(GenerateParams, params, "generate params")
    if settings.backend.startswith("toy"):
        return _toy_text(settings, set(class_names))
    if settings.backend == "sd-image-variations":
        prompts = "each real training image as the condition"
    elif settings.captioner_path:
        prompts = f"prompts '{settings.caption_template}' with {settings.captioner_id} captions"
    else:
        prompts = "class-name prompt templates"
    if settings.rare_scenarios:
        prompts += f" + rare scenarios {list(settings.rare_scenarios)}"
    negative = (f"negative prompt '{settings.negative_prompt}'" if settings.negative_prompt
                else "no negative prompt")
    native = (f"{settings.native_resolution} px" if settings.native_resolution
              else "the model's native size")
    model = settings.model_id
    if settings.use_refiner:
        model += f" + refiner {settings.refiner_id}"
    if settings.vae_path:
        model += f" + VAE {settings.vae_id}"
    return (f"{settings.backend} {model}; {prompts}; guidance {settings.cfg_scale:g}, "
            f"{settings.steps} steps, scheduler {settings.scheduler}, {negative}; {native} "
            f"saved at {settings.image_size} px")


def _toy_text(settings: GenerateParams, class_names: set[str]) -> str:
    from synreal.data.toyworld import COARSE_CLASSES
    from synreal.generate.toy_guidance import confusion_rate, toy_world

    world = toy_world(settings)
    made = ("the toy world's renderer, biased" if settings.backend == "toy"
            else "toy image variations of the real images (scene kept, instance redrawn)")
    text = (f"{made} at guidance {settings.cfg_scale:g}: object scale "
            f"({world.scale[0]:.2f}, {world.scale[1]:.2f}), brightness "
            f"({world.brightness[0]:.2f}, {world.brightness[1]:.2f}), no occlusion")
    if class_names - set(COARSE_CLASSES):  # a coarse class: any of its breeds is right
        text += f", breed label confusion {confusion_rate(settings):.2f}"
    return text
