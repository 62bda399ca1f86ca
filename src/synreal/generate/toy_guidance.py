"""What guidance does to the toy generator: its ranges and label confusion at a scale.

Light (no torch, no diffusers): the toy backend draws from these, and the datasets table
states them for each set (:mod:`synreal.report.made_by`).
"""

from __future__ import annotations

from synreal.data.toyworld import WorldParams
from synreal.generate.params import GenerateParams

#: The guidance scale at which the toy generator renders exactly its configured ranges.
REFERENCE_CFG = 7.5


def guidance_factor(cfg_scale: float) -> float:
    """How much wider than configured the toy ranges are at ``cfg_scale`` (1 at 7.5).

    A stand-in for what guidance does to a diffusion model's samples (MixDiff Fig. 7,
    SynBench F1): stronger guidance follows the prompt more closely and lowers diversity;
    weaker guidance is more diverse and more often off-class. Here the scale and brightness
    ranges shrink around their centres, and the label confusion rate falls, as 7.5 / scale.
    """
    return REFERENCE_CFG / cfg_scale


def _around_centre(bounds, factor: float, limits) -> tuple[float, float]:
    low, high = bounds
    centre, half = (low + high) / 2, (high - low) / 2 * factor
    return max(limits[0], centre - half), min(limits[1], centre + half)


#: Object scales the renderer draws as an animal (it may run out of the frame above 1). The
#: widened scale range of a weak guidance scale is clipped to these, not to the default real
#: world's 0.3-0.95: a study's toyworld.scale may lie above that (the demo's is 1.0-1.5).
DRAWABLE_SCALE = (0.2, 1.8)


def toy_world(params: GenerateParams) -> WorldParams:
    """The biased world: narrower scale and brightness, never occluded; guidance-dependent."""
    factor, real = guidance_factor(params.cfg_scale), WorldParams()
    return WorldParams(scale=_around_centre(params.toy_scale, factor, DRAWABLE_SCALE),
                       brightness=_around_centre(params.toy_brightness, factor,
                                                 real.brightness),
                       occlusion_prob=0.0)


def confusion_rate(params: GenerateParams) -> float:
    """The label confusion rate at the params' guidance scale (configured at 7.5)."""
    return min(1.0, params.confusion_rate * guidance_factor(params.cfg_scale))
