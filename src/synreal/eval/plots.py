"""Evaluation figures: confusion matrix and retrieval examples, as PNG files.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend switch),
so plotting works in headless jobs and never leaks figures; files appear atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

CORRECT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"


def plot_confusion_matrix(
    confusion: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Save a ``(C, C)`` confusion matrix (rows = true, columns = predicted) as a PNG.

    With ``normalize`` each row is divided by its total, so the diagonal is per-class recall.
    """
    matrix = np.asarray(confusion, dtype=float)
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    c = matrix.shape[0]
    size = min(4 + 0.25 * c, 20)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.set_xticks(range(c), labels=list(class_names), rotation=90, fontsize=max(4, 9 - c // 10))
    ax.set_yticks(range(c), labels=list(class_names), fontsize=max(4, 9 - c // 10))
    fig.tight_layout()
    return _save(fig, path)


def plot_retrieval_examples(
    query_paths: Sequence[str],
    neighbor_paths: Sequence[Sequence[str]],
    neighbor_correct: np.ndarray,
    path: Path,
    thumb: int = 96,
) -> Path:
    """Save a grid: one row per query, the query then its top neighbours, framed by outcome.

    Args:
        query_paths: ``Q`` image files.
        neighbor_paths: ``Q`` lists of ``K`` image files (e.g. top 8), best first.
        neighbor_correct: ``(Q, K)`` bool, True where the neighbour has the query's label
            (framed green) and False where not (framed red).
        path: output PNG.
        thumb: thumbnail size in pixels.
    """
    correct = np.asarray(neighbor_correct, dtype=bool)
    rows, k = correct.shape
    if len(query_paths) != rows or any(len(p) != k for p in neighbor_paths):
        raise ValueError("query_paths, neighbor_paths and neighbor_correct disagree in shape")
    fig = Figure(figsize=((k + 1) * thumb / 72, rows * thumb / 72), dpi=72)
    axes = fig.subplots(rows, k + 1, squeeze=False)
    for r in range(rows):
        _tile(axes[r, 0], query_paths[r], thumb, "black", "query" if r == 0 else None)
        for j in range(k):
            color = CORRECT_COLOR if correct[r, j] else WRONG_COLOR
            label = f"#{j + 1}" if r == 0 else None
            _tile(axes[r, j + 1], neighbor_paths[r][j], thumb, color, label)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.97, bottom=0.01, wspace=0.05, hspace=0.05)
    return _save(fig, path)


def _tile(ax, image_path: str, thumb: int, color: str, title: str | None) -> None:
    with Image.open(image_path) as img:
        img = img.convert("RGB")
        img.thumbnail((thumb, thumb))
        ax.imshow(np.asarray(img))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(4)
    if title:
        ax.set_title(title, fontsize=8)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        FigureCanvasAgg(fig).print_png(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
