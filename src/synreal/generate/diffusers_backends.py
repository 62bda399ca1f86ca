"""The product's generators: SD 1.x/2.x, SDXL (+ optional refiner) and SD image variations.

Each backend loads its pipeline once through :func:`synreal.generate.loading.load_pipeline`
and then generates batches. Every image gets its own CPU ``torch.Generator`` seeded with its
planned seed, so an image does not depend on its batch neighbours or on the device's RNG.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from synreal.errors import DataError
from synreal.generate.loading import load_pipeline, model_hash, resolve_model_path, set_scheduler
from synreal.generate.params import GenerateParams
from synreal.generate.plan import ImageJob
from synreal.generate.registry import Generated, register


def _generators(seeds: list[int]) -> list[Any]:
    import torch

    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def native_size(pipe: Any) -> int:
    """The side a pipeline generates at by default: UNet sample size x VAE scale factor."""
    return int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)


class DiffusersBackend:
    """Shared loading and description; subclasses implement :meth:`generate`."""

    kind = "sd"

    def __init__(self, params: GenerateParams, device: str = "cpu") -> None:
        self.params = params
        self.pipe = load_pipeline(self.kind, params.model_path, model_id=params.model_id,
                                  device=device, dtype=params.dtype, scheduler=params.scheduler)
        self.scheduler = set_scheduler(self.pipe, "default")
        self.resolution = params.native_resolution or native_size(self.pipe)
        self.hash = model_hash(resolve_model_path(params.model_path, params.model_id))

    def describe(self) -> dict[str, Any]:
        """Columns shared by every image of this backend."""
        return {"model_id": self.params.model_id, "model_hash": self.hash,
                "scheduler": self.scheduler, "steps": self.params.steps,
                "cfg_scale": float(self.params.cfg_scale),
                "native_resolution": self.resolution}

    def _common(self, seeds: list[int]) -> dict[str, Any]:
        return {"num_inference_steps": self.params.steps,
                "guidance_scale": self.params.cfg_scale, "height": self.resolution,
                "width": self.resolution, "generator": _generators(seeds)}

    def _negative(self, n: int) -> list[str] | None:
        return [self.params.negative_prompt] * n if self.params.negative_prompt else None

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """Text-to-image for the jobs' prompts."""
        out = self.pipe(prompt=[j.prompt for j in jobs], negative_prompt=self._negative(len(jobs)),
                        **self._common(seeds))
        return [Generated(image) for image in out.images]


@register("sd")
class StableDiffusionBackend(DiffusersBackend):
    """SD 1.x / 2.x text-to-image (``StableDiffusionPipeline``), e.g. SD 1.5 at 512 px."""

    kind = "sd"


@register("sdxl")
class StableDiffusionXLBackend(DiffusersBackend):
    """SDXL text-to-image at 1024 px; the refiner (off by default) finishes the last steps."""

    kind = "sdxl"

    def __init__(self, params: GenerateParams, device: str = "cpu") -> None:
        super().__init__(params, device)
        self.refiner = None
        if params.use_refiner:
            self.refiner = load_pipeline(
                "sdxl-refiner", params.refiner_path, model_id=params.refiner_id, device=device,
                dtype=params.dtype, scheduler=params.scheduler, key="refiner_path",
                vae=self.pipe.vae, text_encoder_2=self.pipe.text_encoder_2)
            refiner_hash = model_hash(resolve_model_path(params.refiner_path, params.refiner_id))
            self.hash = f"{self.hash}+{refiner_hash}"

    def describe(self) -> dict[str, Any]:
        """As the base class, with the refiner's id appended to the model id when used."""
        row = super().describe()
        if self.refiner is not None:
            row["model_id"] = f"{self.params.model_id}+{self.params.refiner_id}"
        return row

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """Base model alone, or base to ``refiner_start`` then the refiner on its latents."""
        if self.refiner is None:
            return super().generate(jobs, seeds)
        prompts, negative = [j.prompt for j in jobs], self._negative(len(jobs))
        common = self._common(seeds)
        latents = self.pipe(prompt=prompts, negative_prompt=negative, output_type="latent",
                            denoising_end=self.params.refiner_start, **common).images
        common["generator"] = _generators(seeds)
        for key in ("height", "width"):
            common.pop(key)
        out = self.refiner(prompt=prompts, negative_prompt=negative, image=latents,
                           denoising_start=self.params.refiner_start, **common)
        return [Generated(image) for image in out.images]


@register("sd-image-variations")
class ImageVariationBackend(DiffusersBackend):
    """MixDiff's generator: one variation of each real image.

    The condition is the real image's CLIP image embedding; the weights are e.g.
    ``lambdalabs/sd-image-variations-diffusers`` (512 px).
    """

    kind = "sd-image-variations"

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """One variation per job's source image."""
        images = [_load_source(job) for job in jobs]
        out = self.pipe(image=images, **self._common(seeds))
        return [Generated(image) for image in out.images]


def _load_source(job: ImageJob) -> Image.Image:
    try:
        with Image.open(job.source_path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read real image {job.source_path} (id {job.source_id}) for an "
                        f"image variation: {error}; re-ingest the real dataset.") from None
