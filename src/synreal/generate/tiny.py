"""Tiny randomly initialised generation models, for offline tests, the rehearsal and the bench.

The components follow the real SD 1.x, SDXL and SD image-variations architectures at toy
width (a few channels, two blocks), so they exercise the same loading and generation code
as full-size weights while running in well under a second per image on a CPU. Besides the
pipelines: ``sdxl-vae`` is a bare AutoencoderKL folder like madebyollin/sdxl-vae-fp16-fix
(for ``vae_path``), ``blip`` and ``blip-2`` captioner folders (for ``captioner_path``). Nothing is
downloaded: the tokenizers get small vocabularies written here.

Example:
    >>> folder = build_tiny_pipeline("sd", tmp_path / "tiny-sd")  # doctest: +SKIP
    >>> pipe = load_pipeline("sd", folder, device="cpu")           # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Kinds of tiny pipeline this module can build.
TINY_KINDS = ("sd", "sdxl", "sdxl-refiner", "sd-image-variations", "sdxl-vae", "blip",
              "blip-2")

#: Side of the generated images in pixels (latent 16 x VAE factor 2).
TINY_RESOLUTION = 32

_WORDS = ("a", "photo", "of", "the", "cat", "dog", "wild", "face", "close", "up", "animal",
          "large", "small", "in", "bright", "dark", "environment", "occluded", "by", "human",
          "body", "high", "quality", "pet", "type", "blurry", "lion", "tiger", "fox", "wolf",
          "grass", "sitting", "lying", "looking", "camera", "with", "on", "at")


def _byte_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2 / CLIP scheme)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    codes, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def tiny_clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small CLIP-style byte-level BPE: ``(vocab, merges)``.

    Every byte is a token (alone and as a word end ``</w>``), plus merges that spell a few
    prompt words whole, so prompts tokenize without unknown tokens.
    """
    alphabet = _byte_alphabet()
    tokens = list(alphabet) + [c + "</w>" for c in alphabet]
    merges: list[tuple[str, str]] = []
    for word in _WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            rule = (pieces[0], pieces[1])
            if rule not in merges:
                merges.append(rule)
                tokens.append(pieces[0] + pieces[1])
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    return vocab, merges


def _tokenizer() -> Any:
    from transformers import CLIPTokenizer

    vocab, merges = tiny_clip_vocabulary()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _text_encoder(tokenizer: Any, with_projection: bool = False) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
        # The defaults (bos 49406-style ids, pad 1, eos 2) point at the wrong tokens of a
        # custom vocabulary, and eos decides which hidden state becomes the pooled output.
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return model_cls(config)


def _vae(**extra: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=TINY_RESOLUTION, **extra,
    )


def _build_sdxl_vae() -> Any:
    # the fp16-fix VAE: same architecture as the pipeline's, and safe to run in fp16
    return _vae(force_upcast=False)


def _build_blip() -> Any:
    """A BLIP captioner (model + processor) whose random decoder still emits words."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + list(_WORDS)))}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(
        size={"height": TINY_RESOLUTION, "width": TINY_RESOLUTION}), tokenizer=tokenizer)
    config = BlipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
                     "num_hidden_layers": 2, "num_attention_heads": 4,
                     "max_position_embeddings": 64, "encoder_hidden_size": 32,
                     "bos_token_id": tokenizer.bos_token_id,
                     "sep_token_id": tokenizer.sep_token_id,
                     "eos_token_id": tokenizer.sep_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": TINY_RESOLUTION,
                       "patch_size": 8},
        projection_dim=32)
    model = BlipForConditionalGeneration(config)
    with torch.no_grad():  # random logits would often pick a special token: words instead
        bias = model.text_decoder.cls.predictions.decoder.bias
        bias[[vocab[t] for t in specials if t != "[SEP]"]] = -1e4
    return _Saved(model, processor)


def _build_blip2() -> Any:
    """A BLIP-2 captioner (ViT, Q-Former, OPT) with a byte-level tokenizer, as SynBench's."""
    import torch
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessor,
        GPT2Tokenizer,
        OPTConfig,
    )

    vocab = {c: i for i, c in enumerate(_byte_alphabet())}
    specials = ("<pad>", "</s>", "<image>")
    for token in specials:
        vocab[token] = len(vocab)
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=[], bos_token="</s>", eos_token="</s>",
                              pad_token="<pad>", unk_token="</s>",
                              extra_special_tokens={"image_token": "<image>"})
    queries = 4
    processor = Blip2Processor(image_processor=BlipImageProcessor(
        size={"height": TINY_RESOLUTION, "width": TINY_RESOLUTION}), tokenizer=tokenizer,
        num_query_tokens=queries)
    small = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
             "num_attention_heads": 4}
    config = Blip2Config(
        vision_config={**small, "image_size": TINY_RESOLUTION, "patch_size": 8},
        qformer_config={**small, "encoder_hidden_size": 32, "vocab_size": len(vocab)},
        text_config=OPTConfig(vocab_size=len(vocab), hidden_size=32, ffn_dim=37,
                              num_hidden_layers=2, num_attention_heads=4,
                              word_embed_proj_dim=32, max_position_embeddings=128,
                              bos_token_id=vocab["</s>"], eos_token_id=vocab["</s>"],
                              pad_token_id=vocab["<pad>"]).to_dict(),
        num_query_tokens=queries, image_token_index=vocab["<image>"])
    model = Blip2ForConditionalGeneration(config)
    with torch.no_grad():  # special tokens get logit 0, below the best byte's: text comes out
        model.get_output_embeddings().weight[[vocab[t] for t in specials]] = 0.0
    return _Saved(model, processor)


class _Saved:
    """A model and its processor, saved together like a pipeline."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model, self.processor = model, processor

    def save_pretrained(self, folder: Path, safe_serialization: bool = True) -> None:
        self.model.save_pretrained(folder, safe_serialization=safe_serialization)
        self.processor.save_pretrained(folder)


def _unet(cross_attention_dim: int, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 2, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), norm_num_groups=8, attention_head_dim=(2, 4),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=cross_attention_dim, **extra,
    )


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def _build_sd() -> Any:
    from diffusers import StableDiffusionPipeline

    tokenizer = _tokenizer()
    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(tokenizer), tokenizer=tokenizer,
        unet=_unet(32), scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        image_encoder=None, requires_safety_checker=False,
    )


def _build_sdxl() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    tokenizer = _tokenizer()
    encoder_1 = _text_encoder(tokenizer)
    encoder_2 = _text_encoder(tokenizer, with_projection=True)
    time_dim = 8
    unet = _unet(
        encoder_1.config.hidden_size + encoder_2.config.hidden_size,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        # six micro-conditioning numbers (original size, crop, target size) + pooled text
        projection_class_embeddings_input_dim=6 * time_dim + encoder_2.config.projection_dim,
        transformer_layers_per_block=(1, 1),
    )
    scheduler = EulerDiscreteScheduler.from_config(_scheduler().config)
    return StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=encoder_1, text_encoder_2=encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )


def _build_sdxl_refiner() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    tokenizer = _tokenizer()
    encoder_2 = _text_encoder(tokenizer, with_projection=True)
    time_dim = 8
    unet = _unet(
        encoder_2.config.hidden_size, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        # five micro-conditioning numbers (original size, crop, aesthetic score) + pooled text
        projection_class_embeddings_input_dim=5 * time_dim + encoder_2.config.projection_dim,
        transformer_layers_per_block=(1, 1),
    )
    return StableDiffusionXLImg2ImgPipeline(
        vae=_vae(), text_encoder=None, text_encoder_2=encoder_2, tokenizer=None,
        tokenizer_2=tokenizer, unet=unet,
        scheduler=EulerDiscreteScheduler.from_config(_scheduler().config),
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=True, add_watermarker=False,
    )


def _build_image_variations() -> Any:
    from diffusers import StableDiffusionImageVariationPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=TINY_RESOLUTION, patch_size=8, projection_dim=32,
    ))
    # The processor's crop must equal the vision encoder's image size.
    processor = CLIPImageProcessor(size={"shortest_edge": TINY_RESOLUTION},
                                   crop_size={"height": TINY_RESOLUTION,
                                              "width": TINY_RESOLUTION})
    return StableDiffusionImageVariationPipeline(
        vae=_vae(), image_encoder=vision, unet=_unet(vision.config.projection_dim),
        scheduler=_scheduler(), safety_checker=None, feature_extractor=processor,
        requires_safety_checker=False,
    )


_BUILDERS = {"sd": _build_sd, "sdxl": _build_sdxl, "sdxl-refiner": _build_sdxl_refiner,
             "sd-image-variations": _build_image_variations, "sdxl-vae": _build_sdxl_vae,
             "blip": _build_blip, "blip-2": _build_blip2}


def build_tiny_pipeline(kind: str, folder: Path, seed: int = 0) -> Path:
    """Build a tiny random ``kind`` pipeline, ``save_pretrained`` it to ``folder``; return it.

    Args:
        kind: one of :data:`TINY_KINDS`.
        folder: destination; it then loads through the production loaders
            (:func:`~synreal.generate.loading.load_pipeline`, ``load_vae``,
            :func:`~synreal.generate.captions.load_captioner`).
        seed: torch seed for the random weights.
    """
    import torch

    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny pipeline kind {kind!r}; known kinds: {list(TINY_KINDS)}.")
    folder = Path(folder)
    torch.manual_seed(seed)
    pipe = _BUILDERS[kind]()
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
