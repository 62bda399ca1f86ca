"""Feature protocols against a hand-written pass through the ViT's blocks (DINO's recipe)."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from synreal.eval.extract import Preprocess, embed_batch, extract_features


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=8, dynamic_img_size=True, num_classes=0).eval()


def _reference_intermediate(model, x, n):
    """DINO's get_intermediate_layers: run blocks, normalise the last n outputs."""
    x = model.patch_embed(x)
    x = model._pos_embed(x)
    x = model.norm_pre(x)
    outputs = []
    for i, block in enumerate(model.blocks):
        x = block(x)
        if len(model.blocks) - i <= n:
            outputs.append(model.norm(x))
    return outputs


@pytest.mark.parametrize("avgpool", [False, True])
def test_dino_linear_matches_reference(vit, avgpool):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = embed_batch(vit, x, "dino_linear", n_last_blocks=4, avgpool=avgpool)
        inter = _reference_intermediate(vit, x, 4)
        ref = torch.cat([t[:, 0] for t in inter], dim=-1)
        if avgpool:
            ref = torch.cat([ref, inter[-1][:, 1:].mean(1)], dim=-1)
    assert ours.shape == (3, 192 * (5 if avgpool else 4))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_cls_is_last_normalised_cls(vit):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(embed_batch(vit, x, "cls"),
                                   _reference_intermediate(vit, x, 1)[-1][:, 0])


def test_extract_keeps_order_and_handles_odd_modes(vit, tmp_path):
    paths = []
    for i, mode in enumerate(["RGB", "L", "RGBA", "CMYK", "RGB"]):
        path = tmp_path / f"{i}.{'jpg' if mode == 'CMYK' else 'png'}"
        Image.new(mode, (40, 36), tuple([i * 40] * len(mode))).save(path)
        paths.append(str(path))
    prep = Preprocess(resize=36, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    emb, rate = extract_features(vit, paths, prep, batch_size=2)
    single = np.concatenate([extract_features(vit, [p], prep)[0] for p in paths])
    assert emb.dtype == np.float32 and emb.shape == (5, 192) and rate > 0
    np.testing.assert_allclose(emb, single, rtol=1e-4, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])
