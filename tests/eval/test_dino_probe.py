"""DINO-protocol linear probe on a tiny random ViT and a handful of random images."""

import timm
import torch
from torch.utils.data import DataLoader, Dataset

from synreal.eval.dino_probe import (
    dino_eval_transform,
    dino_linear_probe,
    dino_train_transform,
)


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
