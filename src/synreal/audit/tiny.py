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
