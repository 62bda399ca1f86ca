"""Full-fidelity linear probe: DINO ``eval_linear.py`` with augmentations, on images.

Caron et al. (ICCV 2021), appendix: a linear layer on frozen features is trained for 100
epochs with SGD (momentum 0.9, no weight decay), a cosine learning-rate schedule stepped per
epoch, and ``lr = base_lr * batch_size / 256``; training images get RandomResizedCrop(224) and
a horizontal flip, evaluation images Resize(256, bicubic) + CenterCrop(224). As in DINOv2's
linear evaluation, one head per base lr is trained at once on the same frozen features (one
backbone pass per batch serves every lr); the head with the best top-1 on a *held-out part of
trainval* is reported on test (DINO's script picks on the evaluation set itself, which we
must not do).

Cost: ``epochs`` backbone passes over the training images, so this is a GPU job; the fast
probe in :mod:`synreal.eval.probe` works on pre-extracted features instead.

:func:`dino_linear_probe_features` is the same protocol on features extracted once (what the
``probe`` stage runs): the same head, optimiser, lr scaling, schedule, epochs and batch, but
every image is seen as its evaluation centre crop, so RandomResizedCrop and flip are not
applied while training the head (with fixed features they cannot be). The selected base lr
is then retrained on all of trainval (the official script trains once on its train split).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synreal.eval.embeddings import ArrayLike
from synreal.eval.probe import (
    ProbeResult,
    classification_metrics,
    flush_denormals,
    probe_inputs,
    probe_result,
    stratified_split,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINO_BASE_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)

if TYPE_CHECKING:  # torchvision costs seconds to import; only the image paths need it
    from torchvision.transforms import v2

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]  # (images (B, 3, H, W), labels (B,))


def dino_train_transform(size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Compose:
    """RandomResizedCrop(size) + horizontal flip + normalisation (DINO linear training)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.ToImage(),
        v2.RandomResizedCrop(size, antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def dino_eval_transform(
    resize: int = 256, crop: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> v2.Compose:
    """Resize(resize, bicubic) + CenterCrop(crop) + normalisation (DINO evaluation)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.ToImage(),
        v2.Resize(resize, interpolation=v2.InterpolationMode.BICUBIC, antialias=True),
        v2.CenterCrop(crop),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


@dataclass
class DinoProbeResult:
    """Test metrics of the selected head (see :func:`synreal.eval.probe.classification_metrics`)."""

    best_base_lr: float
    val_top1: dict[float, float]  # held-out top-1 per base lr
    test: dict[str, Any]


def dino_linear_probe(
    backbone: Callable[[torch.Tensor], torch.Tensor],
    train_batches: Batches,
    val_batches: Batches,
    test_batches: Batches,
    num_classes: int,
    base_lrs: Sequence[float] = DINO_BASE_LRS,
    epochs: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> DinoProbeResult:
    """Train one linear head per base lr on frozen ``backbone`` features, pick on held-out.

    Args:
        backbone: frozen feature extractor, images ``(B, 3, H, W)`` -> features ``(B, D)``
            (e.g. concatenated CLS tokens of the last blocks); called under ``no_grad``.
        train_batches: re-iterable loader over the fitting part of trainval, with
            :func:`dino_train_transform` applied and shuffling (a ``DataLoader``).
        val_batches: loader over the held-out part of trainval, :func:`dino_eval_transform`.
        test_batches: loader over test, :func:`dino_eval_transform`.
        num_classes: C; labels are codes in ``[0, C)``.
        base_lrs: learning rates before the ``batch_size / 256`` scaling.
        epochs: DINO uses 100.
        seed: seeds torch's global RNG inside this call (head initialisation, augmentations,
            loader seeds); the caller's RNG state is restored afterwards.
        device: where the backbone and heads run.
    """
    with torch.random.fork_rng(devices=[]):  # loaders draw their seeds from it too
        torch.manual_seed(seed)
        heads = _train_heads(backbone, train_batches, num_classes, base_lrs, epochs, device)
        val_logits, val_y = _logits(backbone, heads, val_batches, device)
        test_logits, test_y = _logits(backbone, heads, test_batches, device)
    val_top1 = {lr: float((lg.argmax(1) == val_y).double().mean())
                for lr, lg in zip(base_lrs, val_logits, strict=True)}
    best = max(range(len(base_lrs)), key=lambda i: (val_top1[base_lrs[i]], -i))
    return DinoProbeResult(
        best_base_lr=base_lrs[best],
        val_top1=val_top1,
        test=classification_metrics(test_logits[best], test_y, num_classes),
    )


def _train_heads(backbone, batches, num_classes, base_lrs, epochs, device) -> list[nn.Linear]:
    """One head per base lr at ``base x images per step / 256``: the linear scaling rule.

    eval_linear.py multiplies by its nominal batch (``batch_size_per_gpu x world_size``),
    which every step but the last has on ImageNet; here a split smaller than one batch is one
    step of its own size, and the held-out selection's fitting part and the retraining on the
    whole split each run at their own step's size. (Scaling by the nominal 1024 instead moved
    the demo's rows by 1-5 points: README "What the demo is".)
    """
    heads: list[nn.Linear] = []  # created at the first batch, when the feature dim is known
    optimizers: list[torch.optim.Optimizer] = []
    schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
    for _epoch in range(epochs):
        for images, labels in batches:
            features = _features(backbone, images, device)
            if not heads:
                heads = [_new_head(features.shape[1], num_classes, device) for _ in base_lrs]
                optimizers = [
                    torch.optim.SGD(h.parameters(), lr=lr * images.shape[0] / 256,
                                    momentum=0.9, weight_decay=0.0)
                    for h, lr in zip(heads, base_lrs, strict=True)
                ]
                schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(o, epochs, eta_min=0)
                              for o in optimizers]
            labels = labels.to(device)
            for head, optimizer in zip(heads, optimizers, strict=True):
                loss = F.cross_entropy(head(features), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    if not heads:
        raise ValueError("the training loader yielded no batch")
    return heads


def _new_head(dim: int, num_classes: int, device) -> nn.Linear:
    head = nn.Linear(dim, num_classes).to(device)
    with torch.no_grad():  # DINO's LinearClassifier init
        head.weight.normal_(0.0, 0.01)
        head.bias.zero_()
    return head


@torch.no_grad()
def _features(backbone, images: torch.Tensor, device) -> torch.Tensor:
    if isinstance(backbone, nn.Module):
        backbone.eval()
    return backbone(images.to(device)).float().flatten(1)


@torch.no_grad()
def _logits(backbone, heads, batches, device) -> tuple[list[torch.Tensor], torch.Tensor]:
    outputs: list[list[torch.Tensor]] = [[] for _ in heads]
    labels = []
    for images, y in batches:
        features = _features(backbone, images, device)
        for out, head in zip(outputs, heads, strict=True):
            out.append(head(features).cpu())
        labels.append(y.cpu())
    return [torch.cat(o) for o in outputs], torch.cat(labels).long()


@dataclass(frozen=True)
class DinoLinearConfig:
    """DINO ``eval_linear.py`` settings on fixed features (official defaults)."""

    base_lrs: Sequence[float] = DINO_BASE_LRS  # official default 0.001, "tweak per checkpoint"
    epochs: int = 100
    batch_size: int = 1024  # 128 per GPU x 8 GPUs
    val_fraction: float = 0.2
    seed: int = 0

    def describe(self) -> str:
        """One line with every setting, for metrics' ``protocol``."""
        return (f"DINO eval_linear on fixed features: linear layer (init N(0, 0.01)), SGD "
                f"momentum 0.9, weight decay 0, batch {self.batch_size} (the whole split "
                f"where it is smaller), lr = base x images per step/256 (the linear "
                f"scaling rule; eval_linear.py multiplies by its nominal batch, the same "
                f"wherever a split fills its batches) with base in {list(self.base_lrs)} "
                f"picked on a held-out "
                f"{self.val_fraction:.0%} of the train split then retrained on all of it, "
                f"{self.epochs} epochs cosine to 0; no RandomResizedCrop/flip (features are "
                "extracted once from the centre crop)")


class _ShuffledBatches:
    """Re-iterable mini-batches of fixed features, reshuffled each pass by ``generator``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int,
                 generator: torch.Generator) -> None:
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            yield self.x[rows], self.y[rows]


def _fit_heads(x: np.ndarray, codes: np.ndarray, num_classes: int, base_lrs: Sequence[float],
               config: DinoLinearConfig) -> list[nn.Linear]:
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    batches = _ShuffledBatches(features, torch.from_numpy(codes.astype(np.int64)),
                               config.batch_size, torch.Generator().manual_seed(config.seed))
    with torch.random.fork_rng(devices=[]), flush_denormals():
        torch.manual_seed(config.seed)  # head initialisation
        return _train_heads(nn.Identity(), batches, num_classes, tuple(base_lrs),
                            config.epochs, "cpu")


@torch.no_grad()
def _head_logits(head: nn.Linear, x: np.ndarray) -> torch.Tensor:
    return head(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def dino_linear_probe_features(train_emb: ArrayLike, train_labels: ArrayLike,
                               test_emb: ArrayLike, test_labels: ArrayLike,
                               config: DinoLinearConfig | None = None) -> ProbeResult:
    """DINO's linear protocol on fixed features: pick the base lr on held-out, retrain, test.

    Args:
        train_emb, train_labels: ``(N, d)`` train-split features (as extracted: DINO feeds
            its linear layer the raw concatenated CLS tokens, no standardisation) and labels.
        test_emb, test_labels: ``(M, d)`` test features and labels.
        config: the protocol's settings (defaults: the official ones).

    Returns:
        A :class:`~synreal.eval.probe.ProbeResult` (``best_weight_decay`` is 0, DINO's).
    """
    config = config or DinoLinearConfig()
    x_train, c_train, x_test, c_test, classes = probe_inputs(train_emb, train_labels,
                                                             test_emb, test_labels)
    num_classes = len(classes)
    fit_rows, val_rows = stratified_split(c_train, config.val_fraction, config.seed)
    heads = _fit_heads(x_train[fit_rows], c_train[fit_rows], num_classes, config.base_lrs,
                       config)
    y_val = torch.from_numpy(c_train[val_rows].astype(np.int64))
    grid = []
    for lr, head in zip(config.base_lrs, heads, strict=True):
        logits = _head_logits(head, x_train[val_rows])
        grid.append({"lr": float(lr), "weight_decay": 0.0,
                     "val_top1": float((logits.argmax(1) == y_val).double().mean()),
                     "val_loss": float(F.cross_entropy(logits, y_val))})
    best = min(range(len(grid)), key=lambda i: (-grid[i]["val_top1"], grid[i]["val_loss"]))
    (head,) = _fit_heads(x_train, c_train, num_classes, (config.base_lrs[best],), config)
    return probe_result(_head_logits(head, x_test), c_test, classes,
                        float(config.base_lrs[best]), 0.0, grid)
