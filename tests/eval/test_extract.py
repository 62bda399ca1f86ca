"""Feature protocols against a hand-written pass through the ViT's blocks (DINO's recipe)."""

from pathlib import Path

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


@pytest.fixture(scope="module")
def avg_vit():
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=8, dynamic_img_size=True, num_classes=0,
                             global_pool="avg").eval()


def test_patch_pooled_backbone_embeds_its_mean_patch_token(avg_vit):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        tokens = _reference_intermediate(avg_vit, x, 4)  # norm is the identity here
        prefix = avg_vit.num_prefix_tokens
        pooled = [avg_vit.fc_norm(t[:, prefix:].mean(dim=1)) for t in tokens]
        torch.testing.assert_close(embed_batch(avg_vit, x, "cls"), pooled[-1])
        torch.testing.assert_close(embed_batch(avg_vit, x, "cls"), avg_vit(x))
        torch.testing.assert_close(embed_batch(avg_vit, x, "dino_linear", n_last_blocks=2),
                                   torch.cat(pooled[-2:], dim=-1), rtol=1e-5, atol=1e-5)


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


def _photo(rng, height, width):
    """Smooth colour fields with mild noise: compresses and decodes like a photograph."""
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), int)
    return np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255).astype(np.uint8)


def _save(kind, path, pixels):
    """Write ``pixels`` in one of the file kinds an evaluation dataset may hold."""
    image = Image.fromarray(pixels)
    if kind == "jpeg":
        image.save(path, "JPEG", quality=90)
    elif kind == "jpeg_444_progressive":
        image.save(path, "JPEG", subsampling=0, progressive=True)
    elif kind == "jpeg_grey":
        image.convert("L").save(path, "JPEG")
    elif kind == "jpeg_exif_rotated":  # neither path applies the orientation tag
        exif = Image.Exif()
        exif[0x0112] = 6
        image.save(path, "JPEG", exif=exif)
    elif kind == "jpeg_cmyk":
        image.convert("CMYK").save(path, "JPEG")
    elif kind == "jpeg_rgb_coded":  # Adobe transform 0: RGB components, no YCbCr
        image.save(path, "JPEG", keep_rgb=True)
    elif kind == "png":
        image.save(path, "PNG")
    elif kind == "png_grey_alpha":
        image.convert("LA").save(path, "PNG")
    elif kind == "png_16bit":
        Image.fromarray(pixels[..., 0].astype(np.uint16) * 257).save(path, "PNG")
    else:
        raise ValueError(kind)
    return str(path)


KINDS = {"jpeg": True, "jpeg_444_progressive": True, "jpeg_grey": True,
         "jpeg_exif_rotated": True, "jpeg_cmyk": False, "jpeg_rgb_coded": False, "png": False,
         "png_grey_alpha": False, "png_16bit": False}


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """Photo-like files of every kind and several sizes (two of each), in shuffled order."""
    folder, rng = tmp_path_factory.mktemp("mixed"), np.random.default_rng(0)
    sizes = [(48, 64), (64, 48), (37, 53)]
    files = [_save(kind, folder / f"{kind}_{i}.{'png' if kind.startswith('png') else 'jpg'}",
                   _photo(rng, *sizes[(i + j) % 3]))
             for j, kind in enumerate(KINDS) for i in range(2)]
    return [files[i] for i in rng.permutation(len(files))]


@pytest.mark.parametrize("kind", KINDS)
def test_only_plain_jpegs_are_decoded_on_the_device(kind, tmp_path):
    from synreal.eval.extract import device_decodable

    path = _save(kind, tmp_path / "f", _photo(np.random.default_rng(1), 40, 50))
    data = Path(path).read_bytes()
    assert device_decodable(data) is KINDS[kind]
    assert not device_decodable(data[: len(data) // 2])  # cut short: PIL rejects it


@pytest.mark.parametrize(("batch_size", "num_workers"), [(4, 0), (5, 2)])
def test_device_decode_equals_pil(vit, mixed_files, batch_size, num_workers):
    prep = Preprocess(resize=36, crop=32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    pil, _ = extract_features(vit, mixed_files, prep, batch_size=batch_size)
    ours, rate = extract_features(vit, mixed_files, prep, batch_size=batch_size,
                                  num_workers=num_workers, decode="device")
    assert ours.shape == pil.shape == (len(mixed_files), 192) and rate > 0
    np.testing.assert_allclose(ours, pil, rtol=1e-5, atol=1e-5)  # same rows, same order
    assert len({row.tobytes() for row in pil}) == len(mixed_files)


def test_device_batch_preprocessing_equals_the_transform(mixed_files):
    from synreal.eval.extract import EncodedImages, ImageFiles, decode_on_device

    prep = Preprocess(resize=36, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    encoded = EncodedImages(mixed_files)
    batch = decode_on_device([encoded[i] for i in range(len(mixed_files))], mixed_files, prep,
                             "cpu")
    files = ImageFiles(mixed_files, prep)
    expected = torch.stack([files[i] for i in range(len(mixed_files))])
    torch.testing.assert_close(batch, expected, rtol=0, atol=1e-6)


def test_damaged_jpeg_is_named_as_with_pil(vit, tmp_path):
    from synreal.errors import DataError

    path = _save("jpeg", tmp_path / "bad.jpg", _photo(np.random.default_rng(2), 40, 50))
    data = Path(path).read_bytes()
    noise = np.random.default_rng(3).integers(0, 255, 600, dtype=np.uint8).tobytes()
    Path(path).write_bytes(data[:400] + noise + b"\xff\xd9")  # header intact, scan garbage
    prep = Preprocess(resize=36, crop=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    for decode in ("cpu", "device"):
        with pytest.raises(DataError, match="bad.jpg"):
            extract_features(vit, [path], prep, decode=decode)


def test_unknown_decode_lists_the_options(vit, tmp_path):
    with pytest.raises(ValueError, match="cpu.*device"):
        extract_features(vit, [], Preprocess(36, 32, (0.5,) * 3, (0.25,) * 3), decode="gpu")


def test_stage_parameter_checks_decode_without_torch():
    from synreal.errors import ConfigError
    from synreal.eval.extract import DECODES
    from synreal.params import parse_params
    from synreal.stages import features

    assert features.DECODES == DECODES
    assert parse_params(features.FeaturesParams, {"decode": "device"}, "f").decode == "device"
    with pytest.raises(ConfigError, match="decode must be one of"):
        parse_params(features.FeaturesParams, {"decode": "gpu"}, "evaluation.features")
