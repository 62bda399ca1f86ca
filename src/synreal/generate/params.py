"""Every control of the ``generate`` stage, with its default and the reason for it.

The defaults follow the papers where they say what they used: SynBench's default synthetic
set (after SynRep: CFG 2, "class name, caption" prompts with BLIP-2 captions of the real
training images, CFG swept from 2 to 7, rare-scenario phrases), MixDiff (50 steps, CFG 8 for
image variations, safety checker off because it blanks images), and one resize for real and
synthetic images (:mod:`synreal.data.downscale`). Throughput knobs (batch size, dtype,
channels_last, torch.compile, the fp16-safe VAE, a faster scheduler) never change what an
image depicts beyond float rounding, except ``scheduler``/``steps``, which the manifest names.
"""

from __future__ import annotations

from dataclasses import dataclass

from synreal.errors import ConfigError
from synreal.params import doc

DTYPES = ("auto", "fp32", "fp16", "bf16")
IMAGE_FORMATS = ("png", "jpg", "webp")
RARE_SCENARIOS = ("scale", "brightness", "person")
#: The hub id each diffusers backend records (and names in its errors) when model_id is empty.
DEFAULT_MODEL_IDS = {"sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
                     "sd": "stable-diffusion-v1-5/stable-diffusion-v1-5",
                     "sd-image-variations": "lambdalabs/sd-image-variations-diffusers"}


@dataclass(frozen=True)
class GenerateParams:
    """Parameters of synthetic dataset generation (the ``generate`` stage).

    Example:
        >>> GenerateParams(backend="toy", dataset="afhq", per_class=10).image_size
        256
    """

    # --- generator -------------------------------------------------------------------------
    backend: str = doc("Generator: sdxl, sd, sd-image-variations, toy (the demo's biased "
                       "renderer) or toy-variations (the demo's MixDiff counterparts: each "
                       "toy-world real image's breed and background gradient kept, the rest "
                       "redrawn in the biased world).",
                       default="sdxl")
    model_path: str | None = doc(
        "Local folder of the diffusers weights (holding model_index.json), or a Hugging Face "
        "cache folder (models--org--name or its snapshots/<rev>). Not used by toy.",
        default=None)
    model_id: str = doc("Hub id of the weights, recorded per image and named in the error that "
                        "says what to download when model_path is missing. Empty: the "
                        "backend's usual weights (sdxl: stabilityai/stable-diffusion-xl-base-"
                        "1.0, sd: stable-diffusion-v1-5/stable-diffusion-v1-5, "
                        "sd-image-variations: lambdalabs/sd-image-variations-diffusers).",
                        default="")
    use_refiner: bool = doc("sdxl only: run the SDXL refiner on the last denoising steps. Off "
                            "by default (the study uses the base model alone).", default=False)
    refiner_path: str | None = doc("sdxl only: local folder of the refiner weights.",
                                   default=None)
    refiner_id: str = doc("Hub id of the refiner (for the error message and the manifest).",
                          default="stabilityai/stable-diffusion-xl-refiner-1.0")
    refiner_start: float = doc("Fraction of the schedule after which the refiner takes over.",
                               default=0.8)
    vae_path: str | None = doc(
        "sdxl only: local folder of a replacement VAE (an AutoencoderKL save_pretrained "
        "folder), e.g. madebyollin/sdxl-vae-fp16-fix, which decodes in fp16 without the "
        "overflow to black that SDXL's own VAE has in fp16. Null = the pipeline's VAE.",
        default=None)
    vae_id: str = doc("Hub id of the replacement VAE (manifest and error messages).",
                      default="madebyollin/sdxl-vae-fp16-fix")
    # --- what to generate --------------------------------------------------------------------
    dataset: str = doc("Prompt set: afhq (cat/dog/wild face close-ups), oxford_pet (37 breeds) "
                       "or custom (give classes).", default="afhq")
    classes: tuple[str, ...] | None = doc(
        "Class names in label order; default: the prompt set's classes, or the real manifest's "
        "when one is given.", default=None)
    per_class: int | dict | None = doc(
        "Images per class: one int for all, {class: n}, or null to match the real manifest's "
        "counts exactly (the fair comparison).", default=None)
    templates: tuple[str, ...] | None = doc(
        "Prompt templates with a {name} slot, cycled over each class's images, used when no "
        "captioner is given; default: the prompt set's own (synreal.generate.prompts).",
        default=None)
    captioner_path: str | None = doc(
        "Text backends: local folder (save_pretrained) of a BLIP-2 or BLIP captioning model "
        "(transformers Blip2ForConditionalGeneration / BlipForConditionalGeneration, chosen "
        "by its config.json). Set: every real training image is captioned once (cached as "
        "captions.parquet in the output folder) and image i of a class is prompted with "
        "caption_template filled with the class name and the caption of the class's real "
        "image i (cycled): SynBench's default 'IN-Caption' prompts. Null: templates.",
        default=None)
    captioner_id: str = doc("Hub id of the captioner (manifest and error messages); SynBench "
                            "used BLIP-2.", default="Salesforce/blip2-opt-2.7b")
    caption_template: str = doc("Prompt of a captioned image: needs {name} (the class words) "
                                "and {caption}; SynBench's 'class name, caption' format.",
                                default="{name}, {caption}")
    caption_max_tokens: int = doc("Longest caption in generated tokens (greedy decoding, "
                                  "deterministic).", default=30)
    caption_batch_size: int = doc("Real images per captioner call.", default=16)
    rare_scenarios: tuple[str, ...] = doc(
        "SynBench rare-scenario phrases to add: scale (1/3 'large', 1/3 'small', 1/3 none), "
        "brightness (1/3 'in a bright environment', 1/3 'in a dark environment', 1/3 none), "
        "person ('occluded by human body' on every prompt).", default=())
    negative_prompt: str = doc("Negative prompt for every text-to-image call ('' = none, as "
                               "SynBench and MixDiff); keep one policy across a study's "
                               "generators.", default="")
    # --- sampler -----------------------------------------------------------------------------
    cfg_scale: float = doc("Classifier-free guidance scale, >= 1 (1 = no guidance): higher "
                           "follows the prompt more and lowers diversity. SynBench's default "
                           "synthetic set uses 2 (swept 2-7; the full study sets 2); MixDiff "
                           "used 8 for image variations; 7.5 is diffusers' usual default.",
                           default=7.5)
    steps: int = doc("Denoising steps (MixDiff: beyond 50 brings nothing); dpmpp_2m reaches "
                     "about the same images in ~25.", default=50)
    scheduler: str = doc("Scheduler by name (default = the one shipped with the weights); "
                         "dpmpp_2m is DPM-Solver++ 2M (DPMSolverMultistepScheduler, "
                         "algorithm_type dpmsolver++, solver_order 2). See "
                         "synreal.generate.loading.SCHEDULERS; the manifest names it.",
                         default="default")
    seed: int = doc("Study seed; image i of class c uses a seed derived from (seed, c, i), so "
                    "any image can be regenerated alone.", default=0)
    # --- resolution and output ---------------------------------------------------------------
    native_resolution: int | None = doc(
        "Side the model generates at; null = the model's native size (SDXL 1024, SD 512/768).",
        default=None)
    image_size: int = doc("Side of the saved images, matching the real dataset (AFHQ 256); "
                          "resized by synreal.data.downscale, the filter real images get "
                          "in pretraining.", default=256)
    image_format: str = doc("png (lossless, default), jpg (quality 95) or webp (lossless).",
                            default="png")
    # --- throughput --------------------------------------------------------------------------
    batch_size: int = doc("Images per pipeline call: larger is faster until GPU memory runs "
                          "out; measure with bench/generate.py on the GPU.", default=4)
    dtype: str = doc("auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16 (GPU only).",
                     default="auto")
    channels_last: bool = doc("On a GPU, UNet and VAE in channels_last memory layout (faster "
                              "convolutions on tensor cores; same results up to float "
                              "rounding). Ignored on a CPU.", default=True)
    torch_compile: bool = doc("Compile the UNet with torch.compile: a one-off compile of a "
                              "minute or two, then faster steps on a GPU; needs a C++ "
                              "compiler on a CPU.", default=False)
    shard_size: int = doc("Images per shard: the unit that is complete or absent and that is "
                          "split over GPUs.", default=256)
    max_regenerations: int = doc("Blank (constant) images are regenerated with the next seed "
                                 "up to this many times before the run fails.", default=5)
    # --- toy backend -------------------------------------------------------------------------
    confusion_rate: float = doc("toy only: chance that the rendered breed is another breed of "
                                "the same coarse class (the label keeps the prompted one).",
                                default=0.2)
    toy_scale: tuple[float, float] = doc("toy only: (min, max) object scale, narrower than the "
                                         "real toy world's (default 0.3-0.95; set it inside "
                                         "the study's toyworld.scale).", default=(0.5, 0.75))
    toy_brightness: tuple[float, float] = doc("toy only: (min, max) brightness, narrower than "
                                              "the real toy world's (0.35, 1.45).",
                                              default=(0.8, 1.15))

    def __post_init__(self) -> None:
        """Reject values no backend could use, naming the key and the valid options."""
        if not self.model_id:  # the backend's usual weights (the toy backends record their own)
            object.__setattr__(self, "model_id", DEFAULT_MODEL_IDS.get(
                self.backend, DEFAULT_MODEL_IDS["sdxl"]))
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("image_format", self.image_format, IMAGE_FORMATS)
        for scenario in self.rare_scenarios:
            _one_of("rare_scenarios", scenario, RARE_SCENARIOS)
        for template in self.templates or ():
            if "{name}" not in template:
                raise ConfigError(f"generate templates: {template!r} has no {{name}} slot for "
                                  "the class name; write it like 'a photo of a {name}'.")
        for slot in ("{name}", "{caption}"):
            if slot not in self.caption_template:
                raise ConfigError(f"generate caption_template {self.caption_template!r} has "
                                  f"no {slot} slot; write it like '{{name}}, {{caption}}'.")
        if self.cfg_scale < 1:
            raise ConfigError(f"generate cfg_scale {self.cfg_scale} is below 1; set it to 1 "
                              "(no guidance) or more (SynBench 2, MixDiff 8).")
        if self.vae_path and self.backend != "sdxl":
            raise ConfigError(f"generate vae_path replaces SDXL's VAE but backend is "
                              f"{self.backend!r}; remove vae_path or use backend sdxl.")
        for key in ("image_size", "batch_size", "shard_size", "caption_max_tokens",
                    "caption_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"generate {key} must be a positive integer.")
        if not 0.0 <= self.confusion_rate <= 1.0:
            raise ConfigError("generate confusion_rate must lie in [0, 1].")
        counts = self.per_class.values() if isinstance(self.per_class, dict) else [self.per_class]
        if any(n is not None and int(n) < 0 for n in counts):
            raise ConfigError(f"generate per_class {self.per_class!r} has a negative count; give "
                              "an int >= 0, {class: n >= 0}, or null to match the real dataset.")
        if self.steps < 1 or self.max_regenerations < 0:
            raise ConfigError("generate steps must be >= 1 and max_regenerations >= 0.")


def _one_of(key: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"generate {key} {value!r} is not known; choose one of "
                          f"{list(options)}.")
