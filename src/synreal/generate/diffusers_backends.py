"""The product's generators: SD 1.x/2.x, SDXL (+ optional refiner) and SD image variations.

Each backend loads its pipeline once through :func:`synreal.generate.loading.load_pipeline`
and then generates batches. Every image gets its own CPU ``torch.Generator`` seeded with its
planned seed, so an image does not depend on its batch neighbours or on the device's RNG.

Image variations get their condition image as the model card of
lambdalabs/sd-image-variations-diffusers v2.0 prescribes (:func:`variation_condition`):
the v2.0 weights were trained on images resized *without* anti-aliasing, and the card warns
that resizing differently at inference changes the results markedly.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from synreal.errors import DataError
from synreal.generate.loading import (
    load_pipeline,
    load_vae,
    model_hash,
    resolve_model_path,
    set_scheduler,
)
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
        # a GPU (tensor-core convolution) layout: on a CPU it only costs conversions
        self.channels_last = bool(params.channels_last) and str(device).startswith("cuda")
        components = {}
        if params.vae_path:  # checked at config time: sdxl only
            components["vae"] = load_vae(params.vae_path, model_id=params.vae_id,
                                         device=device, dtype=params.dtype)
        self.pipe = load_pipeline(self.kind, params.model_path, model_id=params.model_id,
                                  device=device, dtype=params.dtype, scheduler=params.scheduler,
                                  channels_last=self.channels_last,
                                  compile_unet=params.torch_compile, **components)
        self.scheduler = set_scheduler(self.pipe, "default")
        self.resolution = params.native_resolution or native_size(self.pipe)
        self.hash = model_hash(resolve_model_path(params.model_path, params.model_id))
        if params.vae_path:
            vae_folder = resolve_model_path(params.vae_path, params.vae_id, "vae_path",
                                            marker="config.json")
            self.hash = f"{self.hash}+vae:{model_hash(vae_folder)}"

    def describe(self) -> dict[str, Any]:
        """Columns shared by every image of this backend (what made it, speed options too)."""
        return {"model_id": self.params.model_id, "model_hash": self.hash,
                "scheduler": self.scheduler, "steps": self.params.steps,
                "cfg_scale": float(self.params.cfg_scale),
                "native_resolution": self.resolution,
                "vae_id": self.params.vae_id if self.params.vae_path else None,
                "attention": "sdpa", "channels_last": self.channels_last,
                "torch_compile": bool(self.params.torch_compile)}

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
                channels_last=self.channels_last, compile_unet=params.torch_compile,
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
    ``lambdalabs/sd-image-variations-diffusers`` v2.0 (512 px), given their condition
    images as the model card prescribes (:func:`variation_condition`).
    """

    kind = "sd-image-variations"

    def describe(self) -> dict[str, Any]:
        """As the base class, plus how the condition image was prepared."""
        side = self.condition_side()
        return {**super().describe(), "condition_preprocessing":
                f"resize {side}x{side} bicubic without antialias, CLIP normalisation "
                "(sd-image-variations-diffusers v2.0 model card)"}

    def condition_side(self) -> int:
        """Input side of the pipeline's CLIP image encoder (224 for the real weights)."""
        return int(self.pipe.image_encoder.config.image_size)

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """One variation per job's source image."""
        condition = variation_condition([_load_source(job) for job in jobs],
                                        self.condition_side())
        out = self.pipe(image=condition, **self._common(seeds))
        return [Generated(image) for image in out.images]


#: CLIP's normalisation, as the sd-image-variations model card writes it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def variation_condition(images: list[Image.Image], side: int) -> Any:
    """Condition batch ``(B, 3, side, side)`` float32 as the v2.0 model card prepares it.

    ``ToTensor``, ``Resize((side, side), bicubic, antialias=False)``, ``Normalize`` with
    CLIP's mean and std: a squash to the square (no centre crop), without the anti-aliasing
    the pipeline's own CLIPImageProcessor would apply.
    """
    import numpy as np
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    batch = []
    for image in images:
        x = torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
        x = TF.resize(x, [side, side], interpolation=InterpolationMode.BICUBIC, antialias=False)
        batch.append(TF.normalize(x, list(CLIP_MEAN), list(CLIP_STD)))
    return torch.stack(batch)


def _load_source(job: ImageJob) -> Image.Image:
    try:
        with Image.open(job.source_path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read real image {job.source_path} (id {job.source_id}) for an "
                        f"image variation: {error}; re-ingest the real dataset.") from None
