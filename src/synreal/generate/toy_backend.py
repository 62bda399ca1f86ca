"""The demo's synthetic generator: the toy world rendered with known biases.

It stands in for a diffusion model in the embedded demo and gives the audits a ground
truth. Its biases mirror what SynBench measured on diffusion data:

* narrower object scale and brightness ranges than the real toy world (``toy_scale``,
  ``toy_brightness`` vs :class:`~synreal.data.toyworld.WorldParams` defaults);
* no person occlusion (``occlusion_prob`` 0);
* fine-grained label confusion: with probability ``confusion_rate`` the rendered breed is
  another breed of the same coarse class while the recorded label stays the prompted one.

Classes are toy-world names: coarse (``cat``/``dog``/``wild``: a breed of it is drawn at
random) or breeds (``Bengal``, ``beagle``, ...). Each image's :class:`Draw` is recorded with
the same column names as the real toy world's ``draws.parquet`` plus ``confused``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from typing import Any

import numpy as np

from synreal.data.toyworld import ALL_BREEDS, COARSE_CLASSES, breeds_of, render
from synreal.data.toyworld_layouts import SourceDraws
from synreal.errors import ConfigError
from synreal.generate.params import GenerateParams
from synreal.generate.plan import ImageJob
from synreal.generate.registry import Generated, register
from synreal.generate.toy_guidance import confusion_rate, toy_world

#: Bump when the toy generator's output changes for the same parameters.
TOY_VERSION = 2
#: Bump when the toy image variations change (1 rendered any breed of the source's class).
VARIATIONS_VERSION = 2


def pick_breed(class_name: str, rng: np.random.Generator,
               confusion_rate: float) -> tuple[str, bool]:
    """The breed to render for ``class_name`` and whether it is a confusion.

    A coarse class draws one of its breeds uniformly (no confusion possible: any breed is
    correct). A breed is swapped, with probability ``confusion_rate``, for another breed of
    its coarse class, drawn uniformly.
    """
    if class_name in COARSE_CLASSES:
        members = breeds_of(class_name)
        return members[int(rng.integers(len(members)))].name, False
    if class_name not in ALL_BREEDS:
        raise ConfigError(f"toy backend class {class_name!r} is not a toy-world class; known: "
                          f"{list(COARSE_CLASSES) + sorted(ALL_BREEDS)}.")
    confused = bool(rng.random() < confusion_rate)
    if not confused:
        return class_name, False
    others = [b.name for b in breeds_of(ALL_BREEDS[class_name].coarse) if b.name != class_name]
    return others[int(rng.integers(len(others)))], True


@register("toy")
class ToyBackend:
    """Renders each prompted class with :func:`synreal.data.toyworld.render`."""

    def __init__(self, params: GenerateParams, device: str = "cpu") -> None:
        self.params = params
        self.world = toy_world(params)
        self.resolution = params.native_resolution or params.image_size
        self.confusion_rate = confusion_rate(params)
        recipe = {"version": TOY_VERSION, "world": asdict(self.world),
                  "confusion_rate": self.confusion_rate}
        self.hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """Columns shared by every image (no sampler: steps 0; guidance as modelled above)."""
        return {"model_id": f"toy-v{TOY_VERSION}", "model_hash": self.hash, "scheduler": "none",
                "steps": 0, "cfg_scale": self.params.cfg_scale,
                "native_resolution": self.resolution}

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """Render each job from its own seed; the draw becomes the extra columns."""
        out = []
        for job, seed in zip(jobs, seeds, strict=True):
            rng = np.random.default_rng(int(seed))
            breed, confused = pick_breed(job.label_name, rng, self.confusion_rate)
            image, draw = render(ALL_BREEDS[breed], self.resolution, rng, self.world)
            out.append(Generated(image, {**self._row(draw), "confused": confused}))
        return out

    def _row(self, draw) -> dict[str, Any]:
        """The draw as manifest columns, boxes in saved-image pixels."""
        row = draw.as_row()
        factor = self.params.image_size / self.resolution
        for key in ("bbox", "person_bbox"):
            if row[key] is not None:
                row[key] = [v * factor for v in row[key]]
        return row


@register("toy-variations")
class ToyVariationBackend(ToyBackend):
    """The demo's stand-in for SD image variations (MixDiff): one counterpart per real image.

    A diffusion image variation keeps its source's subject and the colours of its scene but
    redraws the instance with the generator's biases. Here the counterpart keeps the source's
    breed and background gradient (read from the source's recorded toy-world draw) and
    redraws the clutter, pose, position, scale and brightness in the biased world, from the
    pair's own seed; it is recorded with the real image's id as ``source_id``. A breed-labelled
    source is subject to the same label confusion as the ``toy`` backend.

    Keeping the scene matters for DINO: with counterparts that shared only the coarse class
    (or only the breed) every demo MixDiff run's student stopped depending on its input
    within 50 steps; with these it stays image-dependent (README "When DINO does not learn").
    """

    def __init__(self, params: GenerateParams, device: str = "cpu") -> None:
        super().__init__(params, device)
        self.hash = hashlib.sha256(f"{self.hash} variations-v{VARIATIONS_VERSION}"
                                   .encode()).hexdigest()[:16]
        self.source_draws = SourceDraws()

    def describe(self) -> dict[str, Any]:
        """The toy backend's columns, named as the variations."""
        return {**super().describe(), "model_id": f"toy-variations-v{VARIATIONS_VERSION}"}

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """Redraw each job's source scene from the job's own seed."""
        out = []
        for job, seed in zip(jobs, seeds, strict=True):
            source = self.source_draws(job.source_path)
            rng = np.random.default_rng(int(seed))
            if job.label_name in ALL_BREEDS:
                breed, confused = pick_breed(job.label_name, rng, self.confusion_rate)
            else:
                breed, confused = source["breed"], False
            gradient = (source["background_top"], source["background_bottom"])
            image, draw = render(ALL_BREEDS[breed], self.resolution, rng, self.world, gradient)
            out.append(Generated(image, {**self._row(draw), "confused": confused}))
        return out
