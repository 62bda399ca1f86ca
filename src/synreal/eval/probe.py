"""Linear probe on frozen features: multinomial logistic regression, trained on trainval only.

Protocol (the fast variant of DINO's ``eval_linear.py``, on pre-extracted features; see
:mod:`synreal.eval.dino_probe` for the full-fidelity one with augmentations):

1. Split trainval, stratified by class and seeded, into a fitting part and a held-out part
   (``val_fraction``, default 20 %). Test rows are never passed to this step.
2. For each ``(lr, weight_decay)`` of a small grid, standardise features with the fitting
   part's mean/std, train, and score top-1 on the held-out part. The best pair wins (ties:
   lower held-out loss, then grid order), as DINO sweeps its probe lr.
3. Re-standardise on all of trainval, retrain with the best pair, and evaluate on test:
   top-1, top-5, per-class accuracy, confusion matrix, per-image correctness (for CIs).

Training: ``torch.nn.Linear`` (DINO init: weights N(0, 0.01), bias 0), full-batch Adam with a
cosine learning-rate decay to 0 over ``steps`` steps, loss = mean cross-entropy
``+ weight_decay / 2 * ||W||^2`` (an L2 penalty on the weights, not the bias; the same
objective as sklearn's ``LogisticRegression`` with ``C = 1 / (n * weight_decay)``). Full-batch
on CPU makes the run a pure function of the inputs and the seed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synreal.errors import DataError
from synreal.eval.embeddings import ArrayLike, as_embeddings, as_labels, encode_labels
from synreal.eval.leakage import assert_no_test_leakage

DEFAULT_LRS = (1e-3, 1e-2, 1e-1)
DEFAULT_WEIGHT_DECAYS = (0.0, 1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class ProbeConfig:
    """Probe hyper-parameters; the defaults are the protocol."""

    lrs: Sequence[float] = DEFAULT_LRS
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS
    steps: int = 300
    val_fraction: float = 0.2
    seed: int = 0


@dataclass
class ProbeResult:
    """Test-set results of the selected probe; arrays are indexed like ``classes``."""

    top1: float
    top5: float
    per_class_accuracy: np.ndarray  # (C,), NaN for classes absent from test
    confusion: np.ndarray  # (C, C) int64, rows = true class, columns = predicted
    correct: np.ndarray  # (M,) bool, per test image
    predictions: np.ndarray  # (M,) predicted labels
    classes: np.ndarray  # (C,) the label values
    best_lr: float
    best_weight_decay: float
    grid: list[dict[str, float]] = field(default_factory=list)  # held-out score per pair

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars, per-class accuracy and the selection grid."""
        return {
            "top1": self.top1,
            "top5": self.top5,
            "best_lr": self.best_lr,
            "best_weight_decay": self.best_weight_decay,
            "per_class_accuracy": {str(c): float(a) for c, a in
                                   zip(self.classes, self.per_class_accuracy, strict=True)},
            "grid": self.grid,
        }


def linear_probe(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    config: ProbeConfig | None = None,
    train_ids: Sequence[str] | None = None,
    test_ids: Sequence[str] | None = None,
) -> ProbeResult:
    """Select hyper-parameters on held-out trainval, retrain on trainval, evaluate on test.

    Args:
        train_emb: ``(N, d)`` trainval features (numpy or torch).
        train_labels: ``(N,)`` trainval labels.
        test_emb: ``(M, d)`` test features.
        test_labels: ``(M,)`` test labels.
        config: grid, steps, held-out fraction, seed.
        train_ids, test_ids: image ids; when given, a shared id fails the run (leakage guard).
    """
    config = config or ProbeConfig()
    if train_ids is not None and test_ids is not None:
        assert_no_test_leakage(train_ids, test_ids)
    x_train, c_train, x_test, c_test, classes = probe_inputs(train_emb, train_labels,
                                                             test_emb, test_labels)
    num_classes = len(classes)
    best, grid = select_hyperparameters(x_train, c_train, num_classes, config)
    model, mean, std = fit(x_train, c_train, num_classes, *best, config.steps, config.seed)
    logits = predict_logits(model, mean, std, x_test)
    return probe_result(logits, c_test, classes, best[0], best[1], grid)


def probe_inputs(train_emb: ArrayLike, train_labels: ArrayLike, test_emb: ArrayLike,
                 test_labels: ArrayLike) -> tuple[np.ndarray, ...]:
    """Checked ``(x_train, codes_train, x_test, codes_test, classes)`` of a probe's inputs.

    Codes index ``classes`` (the sorted label values of both splits).
    """
    x_train = as_embeddings(train_emb, "train_emb")
    x_test = as_embeddings(test_emb, "test_emb")
    y_train = as_labels(train_labels, x_train.shape[0], "train_labels")
    y_test = as_labels(test_labels, x_test.shape[0], "test_labels")
    classes, (c_train, c_test) = encode_labels(y_train, y_test)
    return x_train, c_train, x_test, c_test, classes


def probe_result(test_logits: torch.Tensor, test_codes: np.ndarray, classes: np.ndarray,
                 best_lr: float, best_weight_decay: float,
                 grid: list[dict[str, float]]) -> ProbeResult:
    """The :class:`ProbeResult` of the selected probe's ``(M, C)`` test logits."""
    metrics = classification_metrics(test_logits, torch.from_numpy(test_codes.astype(np.int64)),
                                      len(classes))
    return ProbeResult(
        top1=metrics["top1"],
        top5=metrics["top5"],
        per_class_accuracy=metrics["per_class_accuracy"],
        confusion=metrics["confusion"],
        correct=metrics["correct"],
        predictions=classes[metrics["predictions"]],
        classes=classes,
        best_lr=best_lr,
        best_weight_decay=best_weight_decay,
        grid=grid,
    )


def select_hyperparameters(
    x: np.ndarray, codes: np.ndarray, num_classes: int, config: ProbeConfig
) -> tuple[tuple[float, float], list[dict[str, float]]]:
    """Best ``(lr, weight_decay)`` by held-out top-1 within trainval ``x`` ``(N, d)``.

    Returns the pair and one ``{"lr", "weight_decay", "val_top1", "val_loss"}`` per grid point.
    """
    fit_rows, val_rows = stratified_split(codes, config.val_fraction, config.seed)
    y_val = torch.from_numpy(codes[val_rows])
    grid, scores = [], []
    for lr in config.lrs:
        for wd in config.weight_decays:
            model, mean, std = fit(x[fit_rows], codes[fit_rows], num_classes, lr, wd,
                                   config.steps, config.seed)
            logits = predict_logits(model, mean, std, x[val_rows])
            top1 = float((logits.argmax(1) == y_val).double().mean())
            loss = float(F.cross_entropy(logits, y_val))
            grid.append({"lr": lr, "weight_decay": wd, "val_top1": top1, "val_loss": loss})
            scores.append((-top1, loss))
    best = grid[min(range(len(grid)), key=scores.__getitem__)]
    return (best["lr"], best["weight_decay"]), grid


def stratified_split(
    codes: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split of row indices into ``(fit_rows, val_rows)``, both sorted.

    Each class gives ``round(val_fraction * n_c)`` rows to the held-out part, keeping at least
    one row for fitting (a class of one image stays entirely in the fitting part).
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(codes):
        rows = rng.permutation(np.flatnonzero(codes == c))
        val.append(rows[: min(round(val_fraction * rows.size), rows.size - 1)])
    val_rows = np.sort(np.concatenate(val))
    if val_rows.size == 0:
        raise DataError("trainval is too small to hold out rows for choosing the probe's "
                        "lr and weight decay; use a larger trainval split or val_fraction.")
    fit_rows = np.setdiff1d(np.arange(codes.size), val_rows)
    return fit_rows, val_rows


def fit(
    x: np.ndarray,
    codes: np.ndarray,
    num_classes: int,
    lr: float,
    weight_decay: float,
    steps: int,
    seed: int,
) -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """Standardise with ``x``'s own statistics and train a linear classifier on it.

    Args:
        x: ``(n, d)`` float32 features of the training rows only.
        codes: ``(n,)`` class codes in ``[0, num_classes)``.

    Returns:
        ``(model, mean, std)``; apply with :func:`predict_logits`.
    """
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    mean = features.mean(0)
    std = features.std(0).clamp_min(1e-6)
    inputs = (features - mean) / std
    targets = torch.from_numpy(np.asarray(codes, dtype=np.int64))
    generator = torch.Generator().manual_seed(seed)
    model = nn.Linear(inputs.shape[1], num_classes)
    with torch.no_grad():
        model.weight.normal_(0.0, 0.01, generator=generator)
        model.bias.zero_()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with flush_denormals():
        _train(model, optimizer, inputs, targets, lr, weight_decay, steps)
    return model, mean, std


def _train(model, optimizer, inputs, targets, lr, weight_decay, steps) -> None:
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.cross_entropy(model(inputs), targets)
        if weight_decay:
            loss = loss + 0.5 * weight_decay * model.weight.pow(2).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Treat subnormal floats as 0 while training (CPU; on by default afterwards: off).

    On separable data softmax probabilities underflow into subnormals, which made each
    backward pass ~50x slower on x86 CPUs without changing the result measurably.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@torch.no_grad()
def predict_logits(
    model: nn.Linear, mean: torch.Tensor, std: torch.Tensor, x: np.ndarray
) -> torch.Tensor:
    """``(n, C)`` logits of ``x`` ``(n, d)``, standardised with the training statistics."""
    features = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return model((features - mean) / std)


def classification_metrics(
    logits: torch.Tensor, targets: torch.Tensor, num_classes: int
) -> dict[str, Any]:
    """Top-1, top-5 (top-C when C < 5), per-class accuracy, confusion, per-sample correctness.

    Args:
        logits: ``(M, C)`` scores.
        targets: ``(M,)`` int64 class codes.
    """
    k = min(5, num_classes)
    topk = logits.topk(k, dim=1).indices.numpy()
    y = targets.numpy()
    pred = topk[:, 0]
    correct = pred == y
    confusion = np.bincount(y * num_classes + pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )
    support = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / support, np.nan)
    return {
        "top1": float(correct.mean()),
        "top5": float((topk == y[:, None]).any(1).mean()),
        "per_class_accuracy": per_class,
        "confusion": confusion,
        "correct": correct,
        "predictions": pred,
    }
