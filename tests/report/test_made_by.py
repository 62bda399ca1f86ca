"""The datasets table's "made by" words, from each backend's resolved generate params."""

import yaml

from synreal.config import validate_config
from synreal.plan import build_plan
from synreal.report.made_by import generation_text

from ..conftest import REPO


def _study_generators():
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    return build_plan(validate_config(study, check_paths=False)).generators


def test_a_diffusion_set_names_its_model_prompts_guidance_sampler_and_sizes():
    generators = _study_generators()
    assert generation_text(generators["afhq_syn"].params) == (
        "sdxl stabilityai/stable-diffusion-xl-base-1.0 + VAE madebyollin/sdxl-vae-fp16-fix; "
        "prompts '{name}, {caption}' with Salesforce/blip2-opt-2.7b captions; guidance 2, "
        "25 steps, scheduler dpmpp_2m, no negative prompt; the model's native size saved at "
        "256 px")
    assert generation_text(generators["afhq_var"].params) == (
        "sd-image-variations lambdalabs/sd-image-variations-diffusers; each real training "
        "image as the condition; guidance 8, 25 steps, scheduler dpmpp_2m, no negative "
        "prompt; the model's native size saved at 256 px")
    refined = {**generators["pets_syn"].params, "use_refiner": True, "captioner_path": None,
               "rare_scenarios": ["person"], "negative_prompt": "blurry",
               "native_resolution": 768}
    assert generation_text(refined) == (
        "sdxl stabilityai/stable-diffusion-xl-base-1.0 + refiner "
        "stabilityai/stable-diffusion-xl-refiner-1.0 + VAE madebyollin/sdxl-vae-fp16-fix; "
        "class-name prompt templates + rare scenarios ['person']; guidance 2, 25 steps, "
        "scheduler dpmpp_2m, negative prompt 'blurry'; 768 px saved at 256 px")


def test_a_toy_set_gives_the_ranges_it_drew_from_at_its_guidance():
    """The toy backend widens its ranges and its breed confusion as guidance falls (7.5 / scale):
    the words give what was drawn, not what was configured; coarse classes are never
    confused, so only a breed-labelled set names the confusion."""
    params = {"backend": "toy", "toy_scale": [1.05, 1.35], "toy_brightness": [0.8, 1.15],
              "confusion_rate": 0.2, "cfg_scale": 7.5}
    assert generation_text(params, ["cat", "dog", "wild"]) == (
        "the toy world's renderer, biased at guidance 7.5: object scale (1.05, 1.35), "
        "brightness (0.80, 1.15), no occlusion")
    assert generation_text({**params, "cfg_scale": 2.5}, ["beagle", "Bengal"]) == (
        "the toy world's renderer, biased at guidance 2.5: object scale (0.75, 1.65), "
        "brightness (0.45, 1.45), no occlusion, breed label confusion 0.60")
    assert generation_text({**params, "backend": "toy-variations"}, ["cat"]).startswith(
        "toy image variations of the real images (scene kept, instance redrawn) at guidance")
