"""Load diffusers pipelines from local folders only: no network, no safety checker.

Weights come from the study config as a local path: a folder written by
``save_pretrained`` / ``hf download --local-dir``, or a Hugging Face cache folder
(``.../models--org--name`` or one of its ``snapshots/<revision>``). A missing path raises a
:class:`~synreal.errors.ConfigError` naming the model to download and where to put it.

Speed options that keep the images (up to float rounding): SDPA attention
(``torch.nn.functional.scaled_dot_product_attention``) in every attention layer,
channels_last UNet and VAE, an optional ``torch.compile`` of the UNet, and for SDXL in fp16
a replacement VAE that does not overflow (madebyollin/sdxl-vae-fp16-fix).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from synreal.errors import ConfigError

#: Scheduler names -> (diffusers class, extra config). ``default`` keeps the shipped one.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    # DPM-Solver++ 2M (Lu et al. 2022): second-order multistep, ~25 steps for guided sampling
    "dpmpp_2m": ("DPMSolverMultistepScheduler",
                 {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler",
                        {"algorithm_type": "dpmsolver++", "solver_order": 2,
                         "use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SMALL_FILE = 16 * 2**20


def resolve_model_path(path: str | Path | None, model_id: str, key: str = "model_path",
                       marker: str = "model_index.json") -> Path:
    """The folder holding ``marker`` for ``path``, or a ConfigError saying what to do.

    Accepts a save_pretrained folder, a HF cache repo folder (newest snapshot wins) or a
    snapshot. ``marker``: ``model_index.json`` for a pipeline, ``config.json`` for one model
    (a VAE, a captioner).
    """
    hint = (f"download {model_id} with `hf download {model_id} --local-dir <folder>` on a "
            f"machine with internet, copy it here and set generate {key} to that folder")
    if not path:
        raise ConfigError(f"generate {key} is not set; {hint}.")
    folder = Path(path).expanduser()
    if (folder / marker).is_file():
        return folder
    snapshots = sorted((folder / "snapshots").glob(f"*/{marker}"),
                       key=lambda p: p.stat().st_mtime)
    if snapshots:
        return snapshots[-1].parent
    what = "does not exist" if not folder.exists() else f"has no {marker}"
    raise ConfigError(f"generate {key} {folder} {what}; {hint}.")


def torch_dtype(name: str, device: str) -> Any:
    """The torch dtype for ``name`` on ``device``: auto = fp16 on GPU, fp32 on CPU."""
    import torch

    on_gpu = str(device).startswith("cuda")
    if name == "auto":
        return torch.float16 if on_gpu else torch.float32
    if name in ("fp16", "bf16") and not on_gpu:
        raise ConfigError(f"generate dtype {name} needs a GPU (device {device}); set dtype to "
                          "auto or fp32 for CPU runs.")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def model_hash(folder: Path) -> str:
    """Content fingerprint of a weights folder, cheap enough to compute on every run.

    Files in a HF cache are links to blobs named by their sha256: that name is used as is.
    Other files under 16 MiB are hashed; larger ones contribute their name and size.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        target = file.resolve()
        if _HEX64.match(target.name):
            part = target.name
        elif target.stat().st_size <= _SMALL_FILE:
            part = hashlib.sha256(target.read_bytes()).hexdigest()
        else:
            part = f"size={target.stat().st_size}"
        digest.update(f"{rel}\t{part}\n".encode())
    return digest.hexdigest()[:16]


def set_scheduler(pipe: Any, name: str) -> str:
    """Replace ``pipe.scheduler`` by the one called ``name``; return its recorded name.

    ``default`` keeps the shipped scheduler. See :func:`scheduler_name` for the name.
    """
    if name == "default":
        return scheduler_name(pipe.scheduler)
    if name not in SCHEDULERS:
        raise ConfigError(f"unknown generate scheduler {name!r}; choose one of "
                          f"{['default', *SCHEDULERS]}.")
    import diffusers

    class_name, extra = SCHEDULERS[name]
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **extra)
    return set_scheduler(pipe, "default")


_PIPELINES = {
    "sd": "StableDiffusionPipeline",
    "sdxl": "StableDiffusionXLPipeline",
    "sdxl-refiner": "StableDiffusionXLImg2ImgPipeline",
    "sd-image-variations": "StableDiffusionImageVariationPipeline",
}


def scheduler_name(scheduler: Any) -> str:
    """The class, plus what changes its sampling: DPM-Solver's algorithm and order, Karras.

    Example: ``DPMSolverMultistepScheduler(dpmsolver++, order 2)``.
    """
    config = scheduler.config
    details = []
    if "algorithm_type" in config and "solver_order" in config:
        details += [str(config["algorithm_type"]), f"order {config['solver_order']}"]
    if config.get("use_karras_sigmas", False):
        details.append("karras")
    return type(scheduler).__name__ + (f"({', '.join(details)})" if details else "")


def _component_kwargs(kind: str, folder: Path) -> dict[str, Any]:
    index = json.loads((folder / "model_index.json").read_text())
    kwargs: dict[str, Any] = {}
    if "safety_checker" in index:  # off: it blanks images and costs a CLIP pass per image
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if kind.startswith("sdxl"):
        kwargs["add_watermarker"] = False  # the invisible watermark perturbs pixels
    return kwargs


def load_pipeline(kind: str, path: str | Path | None, *, model_id: str = "", device: str = "cpu",
                  dtype: str = "auto", scheduler: str = "default", key: str = "model_path",
                  channels_last: bool = False, compile_unet: bool = False,
                  **components: Any) -> Any:
    """Load a ``kind`` pipeline (sd, sdxl, sdxl-refiner, sd-image-variations) from disk.

    Args:
        path: local weights folder (see :func:`resolve_model_path`).
        model_id: hub id, named in the error when ``path`` is missing.
        device: ``cpu`` or ``cuda[:n]``.
        dtype: auto, fp32, fp16 or bf16 (see :func:`torch_dtype`).
        scheduler: a name in :data:`SCHEDULERS` or ``default``.
        key: config key named in errors.
        channels_last, compile_unet: speed options (see :func:`speed_up`).
        components: already loaded components to use (the refiner's shared VAE, a
            replacement VAE from :func:`load_vae`).
    """
    folder = resolve_model_path(path, model_id, key)  # before the slow import: fail fast
    torch_type = torch_dtype(dtype, device)
    import diffusers

    pipeline_cls = getattr(diffusers, _PIPELINES[kind])
    variant = "fp16" if torch_type != _fp32() and any(folder.glob("unet/*.fp16.*")) else None
    pipe = pipeline_cls.from_pretrained(
        folder, dtype=torch_type, local_files_only=True, variant=variant,
        **_component_kwargs(kind, folder), **components,
    )
    set_scheduler(pipe, scheduler)
    pipe.set_progress_bar_config(disable=True)
    return speed_up(pipe.to(device), channels_last, compile_unet)


def speed_up(pipe: Any, channels_last: bool, compile_unet: bool) -> Any:
    """SDPA attention everywhere; optionally channels_last UNet/VAE and a compiled UNet."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor2_0

    for model in (pipe.unet, getattr(pipe, "vae", None)):
        if model is not None and getattr(model, "attn_processors", None):
            model.set_attn_processor(AttnProcessor2_0())
        if model is not None and channels_last:
            model.to(memory_format=torch.channels_last)
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet)
    return pipe


def load_vae(path: str | Path | None, *, model_id: str = "", device: str = "cpu",
             dtype: str = "auto", key: str = "vae_path") -> Any:
    """A replacement ``AutoencoderKL`` from a local save_pretrained folder (``config.json``)."""
    folder = resolve_model_path(path, model_id, key, marker="config.json")
    torch_type = torch_dtype(dtype, device)
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(folder, dtype=torch_type,
                                         local_files_only=True).to(device)


def _fp32() -> Any:
    import torch

    return torch.float32


#: Generator params that name a local weights folder: key -> (its hub-id key, the file that
#: marks the folder, tiny kind the rehearsal builds there; None = the backend's pipeline).
WEIGHT_KEYS: dict[str, tuple[str, str, str | None]] = {
    "model_path": ("model_id", "model_index.json", None),
    "refiner_path": ("refiner_id", "model_index.json", "sdxl-refiner"),
    "vae_path": ("vae_id", "config.json", "sdxl-vae"),
    "captioner_path": ("captioner_id", "config.json", "blip"),
}


def tiny_kind(key: str, params: dict) -> str:
    """The :func:`~synreal.generate.tiny.build_tiny_pipeline` kind for a weights key (rehearsal)."""
    kind = WEIGHT_KEYS[key][2]
    if key == "model_path":
        return str(params.get("backend", "sdxl"))
    if key == "captioner_path":
        captioner = str(params.get("captioner_id", "Salesforce/blip2-opt-2.7b")).lower()
        return "blip-2" if "blip2" in captioner or "blip-2" in captioner else "blip"
    return str(kind)


def used_weight_keys(params: dict) -> list[str]:
    """The weights keys a generator's params (a config dict) actually load."""
    backend = str(params.get("backend", "sdxl"))
    keys = [] if backend.startswith("toy") else ["model_path"]
    if params.get("use_refiner"):
        keys.append("refiner_path")
    keys += [k for k in ("vae_path", "captioner_path") if params.get(k)]
    return keys


def check_weights(params: dict, base: Path, where: str = "generate") -> None:
    """Every weights folder the generator loads exists and is of its kind, before any job.

    Raises a ConfigError naming ``<where>.<key>`` and what to download, e.g. for a study's
    ``generators.afhq_syn.params``. A captioner folder must also hold a BLIP-2/BLIP model.
    """
    from synreal.generate.params import GenerateParams

    defaults = GenerateParams()
    for key in used_weight_keys(params):
        id_key, marker, _ = WEIGHT_KEYS[key]
        path = params.get(key)
        try:
            folder = resolve_model_path(Path(base) / path if path else None,
                                        str(params.get(id_key, getattr(defaults, id_key))),
                                        key, marker)
            if key == "captioner_path":
                from synreal.generate.captions import captioner_class

                captioner_class(folder)
        except ConfigError as error:
            raise ConfigError(f"{where}.{key}: {error}") from None
