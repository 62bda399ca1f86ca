"""Evaluation figures: confusion matrix and retrieval examples, as PNG files.

The confusion matrix is drawn on matplotlib's Agg canvas directly (no pyplot, no global
backend switch), so plotting works in headless jobs and never leaks figures. The retrieval
grid is a mosaic of thumbnails composed with PIL alone: with one matplotlib axes per
thumbnail it took seconds per retrieval job, more than the retrieval itself. Files appear
atomically.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

CORRECT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"
QUERY_COLOR = "#000000"
FRAME = 4  # frame width around each thumbnail, pixels
GAP = 4  # space between cells, pixels
HEADER = 14  # height of the column titles, pixels


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
    from matplotlib.figure import Figure

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
    cell = thumb + 2 * FRAME
    canvas = Image.new("RGB", (GAP + (k + 1) * (cell + GAP), HEADER + rows * (cell + GAP)),
                       "white")
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(["query"] + [f"#{j + 1}" for j in range(k)]):
        draw.text((GAP + column * (cell + GAP) + cell // 2, HEADER // 2), title, fill="black",
                  anchor="mm")
    for r in range(rows):
        top = HEADER + r * (cell + GAP)
        _paste_tile(canvas, draw, query_paths[r], (GAP, top), thumb, QUERY_COLOR)
        for j in range(k):
            color = CORRECT_COLOR if correct[r, j] else WRONG_COLOR
            _paste_tile(canvas, draw, neighbor_paths[r][j], (GAP + (j + 1) * (cell + GAP), top),
                        thumb, color)
    return _atomic_png(path, lambda tmp: canvas.save(tmp, format="PNG"))


def _paste_tile(canvas: Image.Image, draw: ImageDraw.ImageDraw, image_path: str,
                corner: tuple[int, int], thumb: int, color: str) -> None:
    """One framed cell: the image scaled to fit ``thumb`` (aspect kept), centred."""
    left, top = corner
    cell = thumb + 2 * FRAME
    draw.rectangle((left, top, left + cell - 1, top + cell - 1), outline=color, width=FRAME)
    with Image.open(image_path) as img:
        img = ImageOps.contain(img.convert("RGB"), (thumb, thumb))
        canvas.paste(img, (left + FRAME + (thumb - img.width) // 2,
                           top + FRAME + (thumb - img.height) // 2))


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    return _atomic_png(path, FigureCanvasAgg(fig).print_png)


def _atomic_png(path: Path, write) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
