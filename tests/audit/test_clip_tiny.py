"""The clip-zeroshot backend on a tiny random open_clip model saved to disk and loaded back
the production way, with the network cut: a hub-style folder (``open_clip_config.json`` beside
``open_clip_pytorch_model.bin``, through open_clip's ``local-dir:`` schema) and a bare weights
file of a registered architecture. Its predictions must be the zero-shot argmax computed here
independently (hand-built preprocessing, prompts and cosine scores). Accuracy needs real
weights."""

import json

import numpy as np
import open_clip
import pytest
import torch

from synreal.audit import consistency
from synreal.audit.params import AuditParams
from synreal.data.toyworld import BREEDS
from synreal.errors import ConfigError
from tests.audit.conftest import WIDE, toy_manifest

ARCH = "synreal-tiny-clip"
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 8,
                       "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 4,
                     "layers": 2}}
#: The folder's preprocessing, unlike open_clip's default: loading must honour it.
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
NAMES = ["Abyssinian", "British_Shorthair", "beagle", "shiba_inu"]  # two with underscores
TEMPLATE = "a photo of a {name}."


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """``(model, {layout: (consistency_weights, consistency_model)})``: one random tiny CLIP
    saved as a hub folder and as a bare weights file of the architecture ``ARCH``, registered
    with ``open_clip.add_model_config``."""
    root = tmp_path_factory.mktemp("clip")
    configs = root / "configs"
    configs.mkdir()
    (configs / f"{ARCH}.json").write_text(json.dumps(TINY))
    # the same towers with another projection; towers of another width
    (configs / f"{ARCH}-48.json").write_text(json.dumps({**TINY, "embed_dim": 48}))
    wide = {**TINY, "text_cfg": {**TINY["text_cfg"], "width": 48}}
    (configs / f"{ARCH}-wide.json").write_text(json.dumps(wide))
    open_clip.add_model_config(configs)
    torch.manual_seed(1)  # a seed whose predictions differ between images (checked below)
    model = open_clip.create_model(ARCH).eval()
    folder = root / "hub"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": TINY, "preprocess_cfg": {"mean": MEAN, "std": STD}}))
    torch.save(model.state_dict(), folder / "open_clip_pytorch_model.bin")
    torch.save(model.state_dict(), root / "tiny.bin")
    layouts = {"folder": (str(folder), "convnext_base"),  # a folder ignores the architecture
               "file": (str(root / "tiny.bin"), ARCH)}
    return model, layouts


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two toy images of each of four breeds, in the project's manifest format."""
    breeds = [b for b in BREEDS if b.name in NAMES]
    frame = toy_manifest(tmp_path_factory.mktemp("clip-images"), 2, WIDE, seed=5, breeds=breeds)
    assert sorted(frame["label_name"].unique()) == sorted(NAMES)
    return frame


def _transform(mean, std):
    """What open_clip's eval preprocessing should be: bicubic resize, centre crop, normalise."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
                      T.CenterCrop(32), T.ToTensor(), T.Normalize(mean, std)])


def _scores(model, paths, mean, std) -> np.ndarray:
    """``(N, C)`` cosine similarities of images to the class prompts, by hand."""
    from PIL import Image

    batch = torch.stack([_transform(mean, std)(Image.open(p).convert("RGB")) for p in paths])
    prompts = [f"a photo of a {name.replace('_', ' ')}." for name in NAMES]
    tokens = open_clip.tokenize(prompts, context_length=TINY["text_cfg"]["context_length"])
    with torch.no_grad():
        image = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
        text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    return (image @ text.T).numpy()


def _params(weights: str, arch: str) -> AuditParams:
    return AuditParams(consistency_backend="clip-zeroshot", consistency_weights=weights,
                       consistency_model=arch, clip_template=TEMPLATE,
                       batch_size=3)  # 3: the last batch is partial


@pytest.mark.parametrize("layout", ["folder", "file"])
def test_predictions_are_the_zero_shot_argmax_computed_by_hand(tiny_clip, images, layout,
                                                               offline):
    model, layouts = tiny_clip
    params = _params(*layouts[layout])
    inputs = consistency.ConsistencyInputs(images, NAMES)
    result = consistency.class_consistency(params, inputs)
    again = consistency.class_consistency(params, inputs)

    mean, std = (MEAN, STD) if layout == "folder" else (open_clip.OPENAI_DATASET_MEAN,
                                                        open_clip.OPENAI_DATASET_STD)
    scores = _scores(model, list(images["path"]), mean, std)
    top2 = np.sort(scores, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-4, "near a tie: float noise could flip it"
    assert len(set(scores.argmax(1))) > 1, "a constant prediction would hide a row mix-up"

    loaded = consistency.load_open_clip(*layouts[layout])
    prompts = consistency.clip_prompts(TEMPLATE, NAMES)
    np.testing.assert_allclose(  # cosines: normalised text and images, in manifest order
        consistency.clip_scores(*loaded, images["path"], prompts, batch_size=3), scores,
        atol=1e-5)
    assert result.predicted.shape == (len(images),)
    assert result.predicted.dtype == np.int64
    assert ((result.predicted >= 0) & (result.predicted < len(NAMES))).all()
    np.testing.assert_array_equal(result.predicted, scores.argmax(1))
    np.testing.assert_array_equal(again.predicted, result.predicted)  # deterministic
    truth = np.array([NAMES.index(n) for n in images["label_name"]])
    np.testing.assert_array_equal(result.consistent, (truth == result.predicted).astype(float))
    assert result.rate == pytest.approx((truth == result.predicted).mean())
    assert result.confusion.sum() == len(images)
    assert result.confusion[truth, result.predicted].min() >= 1
    summary = result.summary()
    assert summary["measured"] and summary["rate"] == result.rate
    assert summary["reference_rate"] is None  # zero-shot: no real held-out reference
    assert not offline, f"network used: {offline}"


def test_the_folder_brings_its_weights_preprocessing_and_tokenizer(tiny_clip, images,
                                                                   offline):
    from PIL import Image

    model, layouts = tiny_clip
    loaded, transform, tokenizer = consistency.load_open_clip(*layouts["folder"])
    assert not loaded.training
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)
    image = Image.open(images["path"].iloc[0]).convert("RGB")
    torch.testing.assert_close(transform(image), _transform(MEAN, STD)(image))
    prompts = consistency.clip_prompts(TEMPLATE, NAMES)
    assert prompts[1] == "a photo of a British Shorthair."
    torch.testing.assert_close(tokenizer(prompts), open_clip.tokenize(prompts, 16))
    assert not offline, f"network used: {offline}"


@pytest.mark.parametrize(("broken", "message"), [
    ("open_clip_config.json", "has no open_clip_config.json"),
    ("open_clip_pytorch_model.bin", "has no weights file"),
    ("model_cfg", r"open_clip_config.json is not an open_clip config"),
])
def test_an_incomplete_folder_is_a_config_error_naming_it(tiny_clip, tmp_path, broken,
                                                          message):
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip[1]["folder"][0], folder)
    if broken == "model_cfg":
        (folder / "open_clip_config.json").write_text(json.dumps({"preprocess_cfg": {}}))
    else:
        (folder / broken).unlink()
    with pytest.raises(ConfigError, match=message) as error:
        consistency.load_open_clip(str(folder), ARCH)
    assert str(folder) in str(error.value)


def test_a_weights_file_needs_a_built_in_architecture(tiny_clip):
    weights = tiny_clip[1]["file"][0]
    with pytest.raises(ConfigError, match=r"consistency_model 'vit_base_patch16_224' is not a "
                                          r"built-in open_clip architecture.*'ViT-B-32'"):
        consistency.load_open_clip(weights, "vit_base_patch16_224")  # a timm name


@pytest.mark.parametrize("arch", [f"{ARCH}-48", f"{ARCH}-wide"])
def test_weights_of_another_architecture_are_a_config_error(tiny_clip, arch):
    weights = tiny_clip[1]["file"][0]
    with pytest.raises(ConfigError, match=f"does not fit open_clip architecture '{arch}'"):
        consistency.load_open_clip(weights, arch)
