"""Randomly initialised audit models, saved the way the audit loads them.

For the benchmark and offline smoke runs: an OWL-ViT or OWLv2 detector and a BLIP VQA judge
as ``save_pretrained`` folders and a timm embedder as a weights file, so that timing goes
through the production loaders and batching with nothing downloaded. By default the
models are tiny (toy width, 32 px inputs): they time the pipeline's overhead. With
``full_size=True`` they keep the real architectures (OWL-ViT B/32 at 768 px, OWLv2 B/16 at
960 px, BLIP base at 384 px) with random weights: the real model's speed, not its answers.

Example:
    >>> folder = build_blip_vqa(tmp_path / "blip")          # doctest: +SKIP
    >>> BlipVqaJudge(folder, "Salesforce/blip-vqa-base")     # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from synreal.audit.params import SYNBENCH_QUESTION

#: Width and input side of the tiny models.
_TINY = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
         "num_attention_heads": 4}
_TINY_SIDE, _TINY_PATCH = 32, 8


def build_owlvit(folder: Path, full_size: bool = False, seed: int = 0) -> Path:
    """An OWL-ViT (B/32 layout when ``full_size``) and its processor in ``folder``."""
    return _build_owl("owlvit", folder, full_size, seed)


def build_owlv2(folder: Path, full_size: bool = False, seed: int = 0) -> Path:
    """An OWLv2 (B/16 at 960 px when ``full_size``) and its processor in ``folder``."""
    return _build_owl("owlv2", folder, full_size, seed)


def _build_owl(version: str, folder: Path, full_size: bool, seed: int) -> Path:
    """OWL-ViT (``version`` ``owlvit``) or OWLv2 (``owlv2``) and its processor in ``folder``."""
    import torch
    import transformers
    from transformers import CLIPTokenizer

    from synreal.generate.tiny import tiny_clip_vocabulary

    prefix = {"owlvit": "OwlViT", "owlv2": "Owlv2"}[version]
    config_class, model_class, image_class, processor_class = (
        getattr(transformers, prefix + name)
        for name in ("Config", "ForObjectDetection", "ImageProcessor", "Processor"))
    vocab, merges = tiny_clip_vocabulary()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=16)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if full_size:  # OWLv2 base reads 960 px (its config's default is OWL-ViT's 768)
        vision = {"image_size": 960, "patch_size": 16} if version == "owlv2" else {}
        config = config_class(text_config={**ids, "max_position_embeddings": 16},
                              vision_config=vision)
        side = config.vision_config.image_size
    else:
        text = {**_TINY, **ids, "vocab_size": len(tokenizer), "max_position_embeddings": 16}
        vision = {**_TINY, "image_size": _TINY_SIDE, "patch_size": _TINY_PATCH}
        config = config_class(text_config=text, vision_config=vision, projection_dim=32)
        side = _TINY_SIDE
    torch.manual_seed(seed)
    model_class(config).save_pretrained(folder)
    size = {"height": side, "width": side}
    crop = {"crop_size": size} if version == "owlvit" else {}  # OWLv2 pads, never crops
    processor_class(image_processor=image_class(size=size, **crop),
                    tokenizer=tokenizer).save_pretrained(folder)
    return Path(folder)


def build_blip_vqa(folder: Path, full_size: bool = False, seed: int = 0) -> Path:
    """A BLIP VQA (base layout when ``full_size``) and its processor in ``folder``.

    The tokenizer knows the words of SynBench's question, yes and no; the vocabulary keeps
    BERT's layout (``[DEC]``, the answer decoder's start token, second to last).
    """
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForQuestionAnswering,
        BlipImageProcessor,
        BlipProcessor,
    )

    size = BlipConfig().text_config.vocab_size if full_size else 64
    vocab = _bert_vocabulary(size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"), bos_token="[DEC]",
                              model_max_length=64)
    text = {"vocab_size": size, "pad_token_id": 0, "bos_token_id": size - 2,
            "sep_token_id": vocab.index("[SEP]")}
    if full_size:
        config = BlipConfig(text_config=text)
    else:
        config = BlipConfig(text_config={**_TINY, **text, "max_position_embeddings": 64},
                            vision_config={**_TINY, "image_size": _TINY_SIDE,
                                           "patch_size": _TINY_PATCH}, projection_dim=32)
    torch.manual_seed(seed)
    BlipForQuestionAnswering(config).save_pretrained(folder)
    side = config.vision_config.image_size
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": side, "width": side}),
                  tokenizer=tokenizer).save_pretrained(folder)
    return folder


def _bert_vocabulary(size: int) -> list[str]:
    """``size`` tokens: BERT's specials, the question's words, fillers, ``[DEC]``, ``[ENC]``."""
    words = dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "yes", "no",
                           *re.findall(r"[a-z]+|[^\sa-z{}]", SYNBENCH_QUESTION.lower())])
    tokens = list(words)
    tokens += [f"[unused{i}]" for i in range(size - 2 - len(tokens))]
    return [*tokens, "[DEC]", "[ENC]"]


def build_timm_weights(path: Path, model_name: str = "test_vit", seed: int = 0) -> Path:
    """Random weights of timm ``model_name`` saved as ``path`` (safetensors)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(timm.create_model(model_name, pretrained=False).state_dict(), str(path))
    return path


def build_fid_inception(path: Path, seed: int = 0) -> Path:
    """FID Inception-v3 (full size: its layout has no smaller variant) with random weights.

    Convolutions get He-normal weights and batch norms unit statistics, so activations keep
    their scale through the 90-odd layers and two image sets give distinct pool3 features.
    """
    import torch

    from synreal.audit.inception import _architecture

    torch.manual_seed(seed)
    model = _architecture()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


#: ConvNeXt-B's layout shrunk through timm's own create_model kwargs (``model_args`` in the
#: hub folder's config.json, which the production loader honours).
TINY_CONVNEXT_ARGS = {"depths": [1, 1, 1, 1], "dims": [8, 16, 32, 64]}


def build_convnext(folder: Path, full_size: bool = False, seed: int = 0) -> Path:
    """A timm hub folder of ``convnext_base`` (config.json + model.safetensors), random.

    Tiny: ConvNeXt-B's family at ``TINY_CONVNEXT_ARGS`` (depths and widths), 1000 ImageNet
    outputs, 32 px input; ``full_size``: the real ConvNeXt-B layout at 224 px.
    """
    import timm
    import torch
    from safetensors.torch import save_file

    args = {} if full_size else TINY_CONVNEXT_ARGS
    side = 224 if full_size else _TINY_SIDE
    torch.manual_seed(seed)
    model = timm.create_model("convnext_base", pretrained=False, **args)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / "model.safetensors"))
    cfg = {"input_size": [3, side, side], "crop_pct": 0.875, "interpolation": "bicubic",
           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 1000}
    (folder / "config.json").write_text(json.dumps(
        {"architecture": "convnext_base", "num_classes": 1000, "model_args": args,
         "pretrained_cfg": cfg}, indent=1))
    return folder


def build_dinov2(folder: Path, full_size: bool = False, seed: int = 0,
                 side: int | None = None) -> Path:
    """A transformers ``Dinov2Model`` and its image processor in ``folder``.

    ViT-B/14 at 224 px when ``full_size``, else a 2-layer width-32 model at ``side`` px
    (default 28: two patches a side).
    """
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    side = 224 if full_size else (side or 28)
    config = Dinov2Config() if full_size else Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
        image_size=side, patch_size=14)
    torch.manual_seed(seed)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": side * 8 // 7},
                      crop_size={"height": side, "width": side}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]
                      ).save_pretrained(folder)
    return Path(folder)


#: A tiny open_clip layout (the hub folder's open_clip_config.json carries it).
TINY_OPEN_CLIP = {"embed_dim": 32,
                  "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8,
                                 "patch_size": 8},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32,
                               "heads": 4, "layers": 2}}


def build_open_clip(folder: Path, full_size: bool = False, seed: int = 0) -> Path:
    """An open_clip hub folder (open_clip_config.json + open_clip_pytorch_model.bin), random.

    Tiny, or ViT-B/32's layout when ``full_size``.
    """
    import open_clip
    import torch

    cfg = open_clip.get_model_config("ViT-B-32") if full_size else TINY_OPEN_CLIP
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": cfg, "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                              "std": [0.26862954, 0.26130258, 0.27577711]}}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    return folder


#: audit.params keys -> builder of their tiny random weights (the rehearsal's models).
REHEARSAL_PARAMS = {"scale_weights": "owlv2", "person_weights": "owlv2",
                    "person_vlm_weights": "blip-vqa", "consistency_weights": "convnext",
                    "clip_weights": "open-clip", "fid_weights": "fid-inception"}
#: audit.embedding keys -> builder (a clip embedder gets an open_clip folder).
REHEARSAL_EMBEDDING = {"embedder_weights": "dinov2"}
#: Keys whose weights are one file, not a folder.
REHEARSAL_FILES = frozenset({"fid_weights"})
_BUILDERS = {"owlv2": build_owlv2, "owlvit": build_owlvit, "blip-vqa": build_blip_vqa,
             "convnext": build_convnext, "open-clip": build_open_clip, "dinov2": build_dinov2}


def build_rehearsal_audit_model(key: str, params: dict, folder: Path) -> None:
    """Write the tiny random model the audit key ``key`` names into ``folder``.

    The rehearsal fixtures' hook: ``key`` is an audit.params (or audit.embedding)
    ``*_weights`` key of the study, ``folder`` the path the study gives it. The FID
    Inception weights are a file: it is written as ``folder`` itself.
    """
    from synreal.errors import ConfigError

    kind = {**REHEARSAL_PARAMS, **REHEARSAL_EMBEDDING}.get(key)
    if kind is None:
        raise ConfigError(f"audit {key}: the rehearsal has no tiny model for it; known keys: "
                          f"{sorted({**REHEARSAL_PARAMS, **REHEARSAL_EMBEDDING})}.")
    if kind == "owlv2" and "owlvit" in str(params.get(key.replace("_weights", "_model_id"),
                                                        "")):
        kind = "owlvit"
    if key == "embedder_weights" and params.get("embedder") == "clip":
        kind = "open-clip"
    if key == "consistency_weights" and params.get("consistency_backend") == "clip-zeroshot":
        kind = "open-clip"
    if kind == "fid-inception":
        build_fid_inception(Path(folder))
    else:
        _BUILDERS[kind](Path(folder))


def build_rehearsal_audit_models(folder: Path) -> dict:
    """Tiny random weights of every audit model the full study uses, under ``folder``.

    Returns ``{"params": {...}, "embedding": {...}}``: the audit.params keys
    ``scale_weights`` and ``person_weights`` (one OWLv2 folder), ``person_vlm_weights``
    (BLIP VQA), ``consistency_weights`` (a ConvNeXt-B-family timm hub folder),
    ``clip_weights`` (an open_clip folder), ``fid_weights`` (the FID Inception-v3 file);
    and the audit.embedding key ``embedder_weights`` (a DINOv2 folder).
    """
    folder = Path(folder)
    paths = {"owlv2": folder / "owlv2", "blip-vqa": folder / "blip-vqa",
             "convnext": folder / "convnext_base", "open-clip": folder / "open_clip",
             "fid-inception": folder / "pt_inception-2015-12-05.pth",
             "dinov2": folder / "dinov2"}
    for kind, path in paths.items():
        if kind == "fid-inception":
            build_fid_inception(path)
        else:
            _BUILDERS[kind](path)
    return {"params": {key: str(paths[kind]) for key, kind in REHEARSAL_PARAMS.items()},
            "embedding": {key: str(paths[kind]) for key, kind in REHEARSAL_EMBEDDING.items()}}
