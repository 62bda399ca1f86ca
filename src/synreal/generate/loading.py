"""Load diffusers pipelines from local folders only: no network, no safety checker.

Weights come from the study config as a local path: a folder written by
``save_pretrained`` / ``hf download --local-dir``, or a Hugging Face cache folder
(``.../models--org--name`` or one of its ``snapshots/<revision>``). A missing path raises a
:class:`~synreal.errors.ConfigError` naming the model to download and where to put it.
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
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SMALL_FILE = 16 * 2**20


def resolve_model_path(path: str | Path | None, model_id: str, key: str = "model_path") -> Path:
    """The folder holding ``model_index.json`` for ``path``, or a ConfigError saying what to do.

    Accepts a diffusers folder, a HF cache repo folder (newest snapshot wins) or a snapshot.
    """
    hint = (f"download {model_id} with `hf download {model_id} --local-dir <folder>` on a "
            f"machine with internet, copy it here and set generate {key} to that folder")
    if not path:
        raise ConfigError(f"generate {key} is not set; {hint}.")
    folder = Path(path).expanduser()
    if (folder / "model_index.json").is_file():
        return folder
    snapshots = sorted((folder / "snapshots").glob("*/model_index.json"),
                       key=lambda p: p.stat().st_mtime)
    if snapshots:
        return snapshots[-1].parent
    what = "does not exist" if not folder.exists() else "has no model_index.json"
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

    ``default`` keeps the shipped scheduler. The name is the class, plus ``(karras)`` when
    it uses Karras sigmas.
    """
    if name == "default":
        karras = pipe.scheduler.config.get("use_karras_sigmas", False)
        return type(pipe.scheduler).__name__ + ("(karras)" if karras else "")
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
                  **components: Any) -> Any:
    """Load a ``kind`` pipeline (sd, sdxl, sdxl-refiner, sd-image-variations) from disk.

    Args:
        path: local weights folder (see :func:`resolve_model_path`).
        model_id: hub id, named in the error when ``path`` is missing.
        device: ``cpu`` or ``cuda[:n]``.
        dtype: auto, fp32, fp16 or bf16 (see :func:`torch_dtype`).
        scheduler: a name in :data:`SCHEDULERS` or ``default``.
        key: config key named in errors.
        components: already loaded components to share (e.g. the refiner's VAE).
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
    return pipe.to(device)


def _fp32() -> Any:
    import torch

    return torch.float32
