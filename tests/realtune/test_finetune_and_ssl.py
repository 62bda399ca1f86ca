"""RealTune's two modes on tiny ViTs: supervised fine-tuning learns and is deterministic;
ssl tuning really starts from the pretrained run's weights."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from synreal.dino.augment import ViewPlan
from synreal.dino.backbones import create_backbone
from synreal.dino.checkpoint import BACKBONE_FILE
from synreal.dino.params import DinoParams
from synreal.dino.train import train_dino
from synreal.errors import DataError
from synreal.eval.extract import Preprocess
from synreal.realtune.finetune import FinetuneRecipe, finetune, predict

TINY = DinoParams(arch="vit_tiny_demo", out_dim=32, epochs=2, batch_size=4, warmup_epochs=1,
                  global_crop_size=16, local_crop_size=8, local_crops_number=2, num_workers=0,
                  checkpoint_every=100, eval_resize=16, drop_path_rate=0.0, lr=0.002)
PREPROCESS = Preprocess(16, 16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
RECIPE = FinetuneRecipe(epochs=15, batch_size=8, lr=1e-3, head_lr_scale=10, weight_decay=0.0,
                        crop_scale=(0.8, 1.0), label_smoothing=0.0, seed=0)


@pytest.fixture(scope="module")
def two_colours(tmp_path_factory):
    """Red-ish vs blue-ish noise images: separable by any backbone that tunes."""
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    paths, labels = [], []
    for i in range(24):
        label = i % 2
        image = rng.integers(0, 90, (16, 16, 3), dtype=np.uint8)
        image[..., 0 if label == 0 else 2] += 160
        path = root / f"{i}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
        labels.append(label)
    return paths, np.array(labels)


def test_supervised_finetuning_learns_a_separable_task(two_colours):
    paths, labels = two_colours
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_demo", 16)
    model, losses = finetune(backbone, PREPROCESS, paths[:16], labels[:16], 2, RECIPE,
                             progress=False)
    assert losses[-1] < losses[0]
    assert (predict(model, PREPROCESS, paths[16:]) == labels[16:]).mean() == 1.0


def test_supervised_finetuning_is_deterministic_on_cpu(two_colours):
    paths, labels = two_colours
    recipe = FinetuneRecipe(**{**RECIPE.__dict__, "epochs": 2})
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model, _ = finetune(create_backbone("vit_tiny_demo", 16), PREPROCESS, paths, labels,
                            2, recipe, progress=False)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=0, atol=0)


def test_ssl_tuning_starts_from_the_pretrained_weights(two_colours, tmp_path):
    samples = [(p,) for p in two_colours[0]]
    plan = ViewPlan.single(2)
    train_dino(TINY, samples, plan, tmp_path / "pretrained", progress=False)
    # lr 0 and teacher momentum 1: nothing moves, so the tuned teacher must be the source's
    frozen = DinoParams(**{**TINY.__dict__, "lr": 0.0, "min_lr": 0.0, "momentum_teacher": 1.0,
                           "epochs": 1, "warmup_epochs": 0})
    train_dino(frozen, samples[:8], plan, tmp_path / "tuned", progress=False,
               init_from=tmp_path / "pretrained")
    source = load_file(tmp_path / "pretrained" / BACKBONE_FILE)
    tuned = load_file(tmp_path / "tuned" / BACKBONE_FILE)
    for name in source:
        torch.testing.assert_close(tuned[name], source[name], rtol=0, atol=0, msg=name)
    # and without init_from the same run starts elsewhere
    train_dino(frozen, samples[:8], plan, tmp_path / "scratch", progress=False)
    scratch = load_file(tmp_path / "scratch" / BACKBONE_FILE)
    assert any(not torch.equal(scratch[n], source[n]) for n in source)


def test_ssl_tuning_from_a_mismatched_recipe_is_a_clear_error(two_colours, tmp_path):
    samples = [(p,) for p in two_colours[0]]
    train_dino(TINY, samples, ViewPlan.single(2), tmp_path / "pretrained", progress=False)
    other = DinoParams(**{**TINY.__dict__, "out_dim": 48})
    with pytest.raises(DataError, match="does not fit this recipe"):
        train_dino(other, samples, ViewPlan.single(2), tmp_path / "tuned", progress=False,
                   init_from=tmp_path / "pretrained")
