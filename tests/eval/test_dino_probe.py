"""DINO-protocol linear probe: on images (a tiny random ViT) and on fixed features."""

import numpy as np
import timm
import torch
from sklearn.linear_model import LogisticRegression
from torch.utils.data import DataLoader, Dataset

from synreal.eval.dino_probe import (
    DinoLinearConfig,
    dino_eval_transform,
    dino_linear_probe,
    dino_linear_probe_features,
    dino_train_transform,
)
from synreal.eval.probe import ProbeConfig, linear_probe


class _Images(Dataset):
    """Random uint8 images whose class is written into their mean brightness."""

    def __init__(self, n, transform, seed):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % 2
        noise = torch.randint(0, 60, (n, 3, 40, 40), generator=g, dtype=torch.uint8)
        self.images = noise + (self.labels * 150).to(torch.uint8)[:, None, None, None]
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def test_runs_end_to_end_and_picks_on_held_out():
    torch.manual_seed(123)
    backbone = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                                 patch_size=8, depth=2, num_classes=0)
    train_tf, eval_tf = dino_train_transform(32), dino_eval_transform(36, 32)
    loaders = [
        DataLoader(_Images(16, train_tf, 0), batch_size=8, shuffle=True,
                   generator=torch.Generator().manual_seed(0)),
        DataLoader(_Images(8, eval_tf, 1), batch_size=8),
        DataLoader(_Images(8, eval_tf, 2), batch_size=8),
    ]
    state = torch.random.get_rng_state()
    result = dino_linear_probe(backbone, *loaders, num_classes=2, base_lrs=(1e-3, 10.0, 300.0),
                               epochs=3)
    assert torch.equal(state, torch.random.get_rng_state())  # caller's RNG untouched
    assert set(result.val_top1) == {1e-3, 10.0, 300.0}
    assert result.val_top1[result.best_base_lr] == max(result.val_top1.values())
    assert result.test["confusion"].sum() == 8 and result.test["correct"].shape == (8,)
    assert 0.0 <= result.test["top1"] <= 1.0


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
