"""DINO-protocol linear probe: on augmented images (a tiny random ViT) and on fixed features."""

import numpy as np
import pytest
import timm
import torch
from sklearn.linear_model import LogisticRegression

from synreal.eval import dino_probe
from synreal.eval.dino_probe import (
    DinoLinearConfig,
    dino_linear_probe_features,
    dino_linear_probe_images,
    dino_train_transform,
)
from synreal.eval.extract import Preprocess
from synreal.eval.probe import ProbeConfig, linear_probe


def _tiny_vit():
    torch.manual_seed(123)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                             patch_size=8, depth=2, num_classes=0).eval()


class _Images:
    """Random uint8 HWC images whose class is written into their brightness, transformed."""

    def __init__(self, labels, transform, seed):
        rng = np.random.default_rng(seed)
        self.raw = [(rng.integers(0, 60, (40, 40, 3)) + 150 * (y % 2)).astype(np.uint8)
                    for y in labels]
        self.transform = transform

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, i):
        return self.transform(self.raw[i])


def _embed(model):
    def embed(batch):
        with torch.no_grad():
            return model(batch)
    return embed


def _centre_features(model, images):
    with torch.no_grad():
        return model(torch.stack([images[i] for i in range(len(images))])).numpy()


EVAL = Preprocess(36, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


@pytest.mark.parametrize("chunk", [128, 3], ids=["one chunk a step", "steps of 3 chunks"])
def test_without_augmentation_the_image_probe_is_the_features_probe(chunk, monkeypatch):
    """The image path's order, head initialisation, lr scaling, selection and retraining are
    the fixed-feature path's: given the evaluation transform instead of the augmentation,
    its predictions and held-out grid equal dino_linear_probe_features' on the same
    backbone's features, so any difference between the two protocols is the augmentation's.
    Also where a step joins several loader chunks (the workers' unit)."""
    monkeypatch.setattr(dino_probe, "CHUNK", chunk)
    model = _tiny_vit()
    train_y, test_y = np.arange(24) % 3, np.arange(9) % 3
    train = _Images(train_y, EVAL.transform(), seed=0)
    test = _Images(test_y, EVAL.transform(), seed=1)
    x_train, x_test = _centre_features(model, train), _centre_features(model, test)
    config = DinoLinearConfig(base_lrs=(1e-2, 1.0), epochs=4, batch_size=8, seed=3)
    fixed = dino_linear_probe_features(x_train, train_y, x_test, test_y, config)
    images = dino_linear_probe_images(_embed(model), train, x_train, train_y, x_test, test_y,
                                      DinoLinearConfig(base_lrs=(1e-2, 1.0), epochs=4,
                                                       batch_size=8, seed=3,
                                                       train_on="images"))
    assert [g["lr"] for g in images.grid] == [g["lr"] for g in fixed.grid]
    np.testing.assert_allclose([g["val_loss"] for g in images.grid],
                               [g["val_loss"] for g in fixed.grid], rtol=1e-4)
    assert images.best_lr == fixed.best_lr
    np.testing.assert_array_equal(images.predictions, fixed.predictions)


def test_the_image_probe_augments_deterministically_and_picks_on_held_out():
    model = _tiny_vit()
    train_y, test_y = np.arange(16) % 2, np.arange(8) % 2
    train = _Images(train_y, dino_train_transform(32, EVAL.mean, EVAL.std), seed=0)
    x_train = _centre_features(model, _Images(train_y, EVAL.transform(), seed=0))
    x_test = _centre_features(model, _Images(test_y, EVAL.transform(), seed=1))
    config = DinoLinearConfig(base_lrs=(1e-3, 10.0, 300.0), epochs=3, batch_size=8,
                              train_on="images")
    state = torch.random.get_rng_state()
    first = dino_linear_probe_images(_embed(model), train, x_train, train_y, x_test, test_y,
                                     config)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched
    again = dino_linear_probe_images(_embed(model), train, x_train, train_y, x_test, test_y,
                                     config)
    assert [g["val_loss"] for g in first.grid] == [g["val_loss"] for g in again.grid]
    np.testing.assert_array_equal(first.predictions, again.predictions)
    best = max(first.grid, key=lambda g: (g["val_top1"], -g["val_loss"]))
    assert first.best_lr == best["lr"]
    assert first.confusion.sum() == 8 and first.correct.shape == (8,)
    # the augmentation reaches the heads: without it the held-out losses differ
    plain = dino_linear_probe_images(_embed(model), _Images(train_y, EVAL.transform(), seed=0),
                                     x_train, train_y, x_test, test_y, config)
    assert [g["val_loss"] for g in plain.grid] != [g["val_loss"] for g in first.grid]
    # loader workers augment the training images: the same result on every run, and not
    # the in-process one (each worker draws from its own seeded stream)
    workers = [dino_linear_probe_images(_embed(model), train, x_train, train_y, x_test, test_y,
                                        config, num_workers=2) for _ in range(2)]
    assert [g["val_loss"] for g in workers[0].grid] == [g["val_loss"] for g in workers[1].grid]
    assert [g["val_loss"] for g in workers[0].grid] != [g["val_loss"] for g in first.grid]
    line = config.describe()
    assert line.startswith("DINO eval_linear on images:")
    assert "RandomResizedCrop + horizontal flip, drawn afresh each epoch" in line


def _gaussian_classes(n_per_class, seed, classes=8, dim=48, spread=1.0):
    """Class means about 10 apart plus unit noise: linearly separable in practice."""
    rng = np.random.default_rng(0)
    means = rng.normal(size=(classes, dim)) * 10 / np.sqrt(2 * dim)  # means ~10 apart
    noise = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    x = means[labels] + spread * noise.normal(size=(len(labels), dim))
    return x.astype(np.float32), labels


def test_dino_linear_and_logistic_probes_agree_where_both_converge():
    """Stated margin: on separable features both probes reach >= 97 % top-1 and their
    top-1 differ by at most 2 points (and their per-image predictions by at most 3 %)."""
    train_x, train_y = _gaussian_classes(60, seed=1)
    test_x, test_y = _gaussian_classes(40, seed=2)
    config = DinoLinearConfig(batch_size=128)  # official lrs, epochs; 480 rows
    dino = dino_linear_probe_features(train_x, train_y, test_x, test_y, config)
    logistic = linear_probe(train_x, train_y, test_x, test_y, ProbeConfig(steps=200))
    assert dino.top1 >= 0.97 and logistic.top1 >= 0.97
    assert abs(dino.top1 - logistic.top1) <= 0.02
    assert (dino.predictions != logistic.predictions).mean() <= 0.03
    # and both agree with an independent solver of the same model (sklearn's lbfgs)
    reference = LogisticRegression(C=1e4, max_iter=2000).fit(train_x, train_y).predict(test_x)
    assert (dino.predictions != reference).mean() <= 0.03


def test_dino_linear_on_features_follows_the_official_recipe():
    """Selection on held-out train rows only, official settings named, deterministic."""
    train_x, train_y = _gaussian_classes(20, seed=3, classes=3, dim=8)
    test_x, test_y = _gaussian_classes(10, seed=4, classes=3, dim=8)
    config = DinoLinearConfig(base_lrs=(1e-4, 1e-1), epochs=20, batch_size=16)
    first = dino_linear_probe_features(train_x, train_y, test_x, test_y, config)
    again = dino_linear_probe_features(train_x, train_y, test_x, test_y, config)
    assert first.top1 == again.top1 and np.array_equal(first.predictions, again.predictions)
    assert [g["lr"] for g in first.grid] == [1e-4, 1e-1]
    assert first.best_lr == 1e-1  # 1e-4 x 16/256 for 20 epochs barely leaves the N(0, 0.01) init
    assert first.best_weight_decay == 0.0
    line = DinoLinearConfig().describe()
    for setting in ("SGD momentum 0.9", "weight decay 0", "batch 1024", "100 epochs cosine",
                    "no RandomResizedCrop/flip"):
        assert setting in line


def test_the_lr_follows_the_linear_scaling_rule_of_each_step(monkeypatch):
    """eval_linear.py: lr = base x batch / 256, its batch being every step's size. A split
    smaller than one batch is one step of its own size: the held-out selection fits 48 rows
    (0.01 x 48 / 256), the retraining all 60 (0.01 x 60 / 256), and the protocol says so."""
    seen = []
    original = torch.optim.SGD

    def recording(params, lr, **kwargs):
        seen.append(lr)
        return original(params, lr=lr, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", recording)
    train_x, train_y = _gaussian_classes(20, seed=3, classes=3, dim=8)
    test_x, test_y = _gaussian_classes(10, seed=4, classes=3, dim=8)
    config = DinoLinearConfig(base_lrs=(1e-2,), epochs=2, batch_size=1024)
    dino_linear_probe_features(train_x, train_y, test_x, test_y, config)
    assert np.allclose(seen, [0.01 * 48 / 256, 0.01 * 60 / 256])
    assert "the whole split where it is smaller), lr = base x images per step/256" in (
        config.describe())
