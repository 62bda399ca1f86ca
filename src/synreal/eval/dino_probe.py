"""DINO's linear protocol (``eval_linear.py``): on augmented images, or on fixed features.

Caron et al. (ICCV 2021), appendix: a linear layer on frozen features is trained for 100
epochs with SGD (momentum 0.9, no weight decay), a cosine learning-rate schedule stepped per
epoch, and ``lr = base_lr * batch_size / 256``; training images get RandomResizedCrop(224) and
a horizontal flip, evaluation images Resize(256, bicubic) + CenterCrop(224). As in DINOv2's
linear evaluation, one head per base lr is trained at once on the same frozen features (one
backbone pass per batch serves every lr); the base lr whose head scores best on a *held-out
part of trainval* is retrained on all of trainval and reported on test (DINO's script picks
on the evaluation set itself, which we must not do).

:func:`dino_linear_probe_images` is that protocol: every epoch puts freshly augmented
training images through the frozen backbone (``epochs`` backbone passes: a GPU job). The
held-out part and test read the centre crop, the features the ``features`` stage extracted
with the checkpoint's evaluation preprocessing, so they are given as fixed features.

:func:`dino_linear_probe_features` is the same protocol on features extracted once: the same
head, optimiser, lr scaling, schedule, epochs, batch, selection and retraining, but every
training image is seen as its evaluation centre crop, so RandomResizedCrop and flip are not
applied (with fixed features they cannot be). Without augmentation the two make the same
predictions on a CPU (a test checks it); on a GPU they differ only by float rounding (bf16
features computed in other batches), so a difference between them is the augmentation's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synreal.eval.embeddings import ArrayLike
from synreal.eval.probe import (
    ProbeResult,
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
#: One image of the training split by row, transformed: ``dataset[i] -> (3, H, W)`` float.
Images = Sequence[torch.Tensor]


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


def _train_heads(backbone, batches, num_classes, base_lrs, epochs, device,
                 progress: str | None = None) -> list[nn.Linear]:
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
    from tqdm import tqdm

    for _epoch in tqdm(range(epochs), desc=progress, unit="epoch", disable=progress is None,
                       mininterval=5):
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
    """DINO's LinearClassifier init, drawn on the CPU (the same draw on any device)."""
    head = nn.Linear(dim, num_classes)
    with torch.no_grad():
        head.weight.normal_(0.0, 0.01)
        head.bias.zero_()
    return head.to(device)


@torch.no_grad()
def _features(backbone, images: torch.Tensor, device) -> torch.Tensor:
    if isinstance(backbone, nn.Module):
        backbone.eval()
    return backbone(images.to(device, non_blocking=True)).float().flatten(1)


#: Images a DataLoader worker decodes and augments at a time: DINO's batch per GPU. A step's
#: batch (1024) is several such chunks, so every worker has work (with whole steps as the
#: loader's batches, Pet's 3-4 steps an epoch would keep at most 3-4 workers busy).
CHUNK = 128


class _Steps:
    """Re-iterable steps of ``batch_size`` images' features, built from loader chunks.

    The loader yields the sampler's order in chunks; consecutive chunks are embedded and
    joined until a step holds ``batch_size`` images (the last step of an epoch: the rest),
    so the steps are exactly those of a loader whose batch is ``batch_size``.
    """

    def __init__(self, loader, embed: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                 device: str) -> None:
        self.loader, self.embed, self.batch_size, self.device = loader, embed, batch_size, device

    def __iter__(self):
        features: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        held = 0
        for images, codes in self.loader:
            features.append(_features(self.embed, images, self.device))
            labels.append(codes)
            held += len(codes)
            while held >= self.batch_size:
                joined, joined_labels = torch.cat(features), torch.cat(labels)
                yield joined[:self.batch_size], joined_labels[:self.batch_size]
                features, labels = [joined[self.batch_size:]], [joined_labels[self.batch_size:]]
                held -= self.batch_size
        if held:
            yield torch.cat(features), torch.cat(labels)


@dataclass(frozen=True)
class DinoLinearConfig:
    """DINO ``eval_linear.py`` settings (official defaults).

    ``train_on``: ``features`` (each training image's evaluation centre crop, extracted once) or
    ``images`` (RandomResizedCrop + flip drawn afresh every epoch, as the official script).
    """

    base_lrs: Sequence[float] = DINO_BASE_LRS  # official default 0.001, "tweak per checkpoint"
    epochs: int = 100
    batch_size: int = 1024  # 128 per GPU x 8 GPUs
    val_fraction: float = 0.2
    seed: int = 0
    train_on: str = "features"

    def __post_init__(self) -> None:
        if self.train_on not in ("features", "images"):
            raise ValueError(f"train_on must be features or images, not {self.train_on!r}")

    def describe(self) -> str:
        """One line with every setting, for metrics' ``protocol``."""
        if self.train_on == "images":
            name = "DINO eval_linear on images"
            views = ("training images RandomResizedCrop + horizontal flip, drawn afresh each "
                     "epoch through the frozen backbone (bf16 autocast on a GPU); held-out "
                     "part and test: the evaluation centre crop")
        else:
            name = "DINO eval_linear on fixed features"
            views = ("no RandomResizedCrop/flip (features are extracted once from the centre "
                     "crop)")
        return (f"{name}: linear layer (init N(0, 0.01)), SGD "
                f"momentum 0.9, weight decay 0, batch {self.batch_size} (the whole split "
                f"where it is smaller), lr = base x images per step/256 (the linear "
                f"scaling rule; eval_linear.py multiplies by its nominal batch, the same "
                f"wherever a split fills its batches) with base in {list(self.base_lrs)} "
                f"picked on a held-out "
                f"{self.val_fraction:.0%} of the train split then retrained on all of it, "
                f"{self.epochs} epochs cosine to 0; {views}")


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


class _ShuffledRows(torch.utils.data.Sampler):
    """``rows`` in a fresh order each pass, drawn as :class:`_ShuffledBatches` draws its."""

    def __init__(self, rows: np.ndarray, generator: torch.Generator) -> None:
        self.rows, self.generator = torch.as_tensor(rows), generator

    def __iter__(self):
        return iter(self.rows[torch.randperm(len(self.rows), generator=self.generator)].tolist())

    def __len__(self) -> int:
        return len(self.rows)


class _Labelled(torch.utils.data.Dataset):
    """``(images[i], codes[i])``: a training image (transformed afresh) and its class code."""

    def __init__(self, images: Images, codes: np.ndarray) -> None:
        self.images, self.codes = images, codes

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.codes[i])


def _fit_heads(x: np.ndarray, codes: np.ndarray, num_classes: int, base_lrs: Sequence[float],
               config: DinoLinearConfig) -> list[nn.Linear]:
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    batches = _ShuffledBatches(features, torch.from_numpy(codes.astype(np.int64)),
                               config.batch_size, torch.Generator().manual_seed(config.seed))
    with torch.random.fork_rng(devices=[]), flush_denormals():
        torch.manual_seed(config.seed)  # head initialisation
        return _train_heads(nn.Identity(), batches, num_classes, tuple(base_lrs),
                            config.epochs, "cpu")


def _fit_image_heads(embed: Callable[[torch.Tensor], torch.Tensor], images: Images,
                     rows: np.ndarray, codes: np.ndarray, num_classes: int,
                     base_lrs: Sequence[float], config: DinoLinearConfig, num_workers: int,
                     device: str) -> list[nn.Linear]:
    """Heads trained on ``images[rows]`` through ``embed``, in :func:`_fit_heads`' order.

    The rows are shuffled by the same seeded generator and the heads initialised from the
    same seed, so that with a deterministic transform the heads are :func:`_fit_heads`'.
    The loader's own generator seeds its workers' augmentations (and nothing else).
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(_Labelled(images, codes), batch_size=min(CHUNK, config.batch_size),
                        sampler=_ShuffledRows(rows, torch.Generator().manual_seed(config.seed)),
                        num_workers=num_workers, persistent_workers=num_workers > 0,
                        pin_memory=str(device).startswith("cuda"),
                        generator=torch.Generator().manual_seed(config.seed + 1))
    steps = _Steps(loader, embed, config.batch_size, device)
    with torch.random.fork_rng(devices=[]), flush_denormals():
        torch.manual_seed(config.seed)  # head initialisation (and in-process augmentations)
        heads = _train_heads(nn.Identity(), steps, num_classes, tuple(base_lrs),
                             config.epochs, device,
                             f"linear probe, {len(base_lrs)} lr(s) on {len(rows)} images")
    return [head.cpu() for head in heads]


@torch.no_grad()
def _head_logits(head: nn.Linear, x: np.ndarray) -> torch.Tensor:
    return head(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def _select_and_retrain(fit: Callable[[np.ndarray, Sequence[float]], list[nn.Linear]],
                        x_train: np.ndarray, c_train: np.ndarray, x_test: np.ndarray,
                        c_test: np.ndarray, classes: np.ndarray,
                        config: DinoLinearConfig) -> ProbeResult:
    """One head per base lr fitted on the fitting rows, the best on held-out retrained on all.

    ``fit(rows, base_lrs)`` trains heads on those trainval rows; ``x_train``'s held-out rows
    and ``x_test`` are the centre-crop features the heads are scored on.
    """
    fit_rows, val_rows = stratified_split(c_train, config.val_fraction, config.seed)
    heads = fit(fit_rows, config.base_lrs)
    y_val = torch.from_numpy(c_train[val_rows].astype(np.int64))
    grid = []
    for lr, head in zip(config.base_lrs, heads, strict=True):
        logits = _head_logits(head, x_train[val_rows])
        grid.append({"lr": float(lr), "weight_decay": 0.0,
                     "val_top1": float((logits.argmax(1) == y_val).double().mean()),
                     "val_loss": float(F.cross_entropy(logits, y_val))})
    best = min(range(len(grid)), key=lambda i: (-grid[i]["val_top1"], grid[i]["val_loss"]))
    (head,) = fit(np.arange(len(c_train)), (config.base_lrs[best],))
    return probe_result(_head_logits(head, x_test), c_test, classes,
                        float(config.base_lrs[best]), 0.0, grid)


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

    def fit(rows: np.ndarray, base_lrs: Sequence[float]) -> list[nn.Linear]:
        return _fit_heads(x_train[rows], c_train[rows], len(classes), base_lrs, config)

    return _select_and_retrain(fit, x_train, c_train, x_test, c_test, classes, config)


def dino_linear_probe_images(embed: Callable[[torch.Tensor], torch.Tensor], images: Images,
                             train_emb: ArrayLike, train_labels: ArrayLike,
                             test_emb: ArrayLike, test_labels: ArrayLike,
                             config: DinoLinearConfig | None = None, num_workers: int = 0,
                             device: str = "cpu") -> ProbeResult:
    """DINO's linear protocol on images: heads trained on augmented views, scored on crops.

    Args:
        embed: the frozen backbone's features of a batch ``(B, 3, H, W)`` -> ``(B, d)``, the
            same features ``train_emb`` holds for the centre crops; called under no_grad.
        images: ``images[i]`` is training image ``i`` (the row of ``train_emb``) with the
            training augmentation applied afresh at each call
            (:func:`dino_train_transform`).
        train_emb, train_labels: ``(N, d)`` centre-crop features of the training split and
            its labels: the held-out selection reads them.
        test_emb, test_labels: ``(M, d)`` centre-crop test features and labels.
        config: the protocol's settings (``train_on`` is ``images``).
        num_workers: DataLoader workers decoding and augmenting the training images.
        device: where the backbone runs and the heads train.

    Returns:
        A :class:`~synreal.eval.probe.ProbeResult`, as :func:`dino_linear_probe_features`.
    """
    config = config or DinoLinearConfig(train_on="images")
    x_train, c_train, x_test, c_test, classes = probe_inputs(train_emb, train_labels,
                                                             test_emb, test_labels)
    if len(images) != len(c_train):
        raise ValueError(f"{len(images)} training images for {len(c_train)} feature rows")

    def fit(rows: np.ndarray, base_lrs: Sequence[float]) -> list[nn.Linear]:
        return _fit_image_heads(embed, images, rows, c_train, len(classes), base_lrs, config,
                                num_workers, device)

    return _select_and_retrain(fit, x_train, c_train, x_test, c_test, classes, config)
