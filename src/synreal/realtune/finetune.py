"""Supervised fine-tuning of a pretrained backbone with a linear head (RealTune / SynTune).

The whole backbone is tuned with a small learning rate and the new head with a larger one
(AdamW, cosine decay), on ``RandomResizedCrop`` + flip views at the backbone's evaluation
size; it is then evaluated on the test split with the backbone's own evaluation
preprocessing. Everything is seeded: on CPU two runs give the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2
from tqdm import tqdm

from synreal.eval.extract import ImageFiles, Preprocess


@dataclass(frozen=True)
class FinetuneRecipe:
    """Optimisation of one fine-tuning run (documented in the stage's params)."""

    epochs: int
    batch_size: int
    lr: float
    head_lr_scale: float
    weight_decay: float
    crop_scale: tuple[float, float]
    label_smoothing: float
    seed: int
    num_workers: int = 0


class Classifier(nn.Module):
    """A backbone's pooled features followed by a linear head."""

    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, n_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of a batch of preprocessed images."""
        return self.head(self.backbone(images))


class _AugmentedImages(Dataset):
    """Training views: random resized crop + flip at the evaluation crop size."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray, preprocess: Preprocess,
                 crop_scale: tuple[float, float]) -> None:
        self.paths, self.labels = list(paths), labels
        self.transform = v2.Compose([
            v2.ToImage(),
            v2.RandomResizedCrop(preprocess.crop, scale=crop_scale, antialias=True,
                                 interpolation=InterpolationMode(preprocess.interpolation)),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(preprocess.mean, preprocess.std),
        ])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from synreal.data.manifest import load_rgb

        return self.transform(np.array(load_rgb(self.paths[index]))), int(self.labels[index])


def finetune(backbone: nn.Module, preprocess: Preprocess, paths: Sequence[str],
             labels: np.ndarray, n_classes: int, recipe: FinetuneRecipe,
             device: str = "cpu", progress: bool = True) -> tuple[Classifier, list[float]]:
    """Tune ``backbone`` and a new head on ``(paths, labels)``; return it and epoch losses."""
    torch.manual_seed(recipe.seed)
    model = Classifier(backbone, n_classes).to(device).train()
    dataset = _AugmentedImages(paths, np.asarray(labels), preprocess, tuple(recipe.crop_scale))
    loader = DataLoader(dataset, batch_size=recipe.batch_size, shuffle=True, drop_last=False,
                        num_workers=recipe.num_workers,
                        generator=torch.Generator().manual_seed(recipe.seed))
    optimizer = torch.optim.AdamW([
        {"params": model.backbone.parameters(), "lr": recipe.lr},
        {"params": model.head.parameters(), "lr": recipe.lr * recipe.head_lr_scale},
    ], weight_decay=recipe.weight_decay)
    base = [group["lr"] for group in optimizer.param_groups]
    total = max(1, recipe.epochs * len(loader))
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    losses, step = [], 0
    bar = tqdm(total=total, unit="step", desc="fine-tune", mininterval=2, disable=not progress)
    for _ in range(recipe.epochs):
        running, seen = 0.0, 0
        for images, targets in loader:
            factor = 0.5 * (1 + math.cos(math.pi * step / total))
            for group, lr in zip(optimizer.param_groups, base, strict=True):
                group["lr"] = lr * factor
            images, targets = images.to(device), targets.to(device)
            loss = criterion(model(images), targets)
            if not math.isfinite(loss.item()):
                from synreal.errors import SynrealError

                raise SynrealError(f"fine-tuning loss became {loss.item()} at step {step}; "
                                   "lower realtune supervised lr.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running, seen, step = running + loss.item() * len(targets), seen + len(targets), \
                step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
        losses.append(running / max(seen, 1))
    bar.close()
    return model.eval(), losses


@torch.no_grad()
def predict(model: Classifier, preprocess: Preprocess, paths: Sequence[str],
            device: str = "cpu", batch_size: int = 128) -> np.ndarray:
    """Predicted class index of every image, with the evaluation preprocessing."""
    loader = DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size)
    model.eval()
    return np.concatenate([model(images.to(device)).argmax(1).cpu().numpy()
                           for images in loader]) if len(paths) else np.empty(0, dtype=int)
