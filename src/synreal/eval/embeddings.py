"""Embedding and label arrays as the evaluation code wants them.

Every evaluation entry point accepts numpy arrays or torch tensors; these helpers turn them
into contiguous numpy arrays once, so the algorithms below them deal with one type only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # numpy.ndarray | torch.Tensor | sequence; kept loose for torch-free callers


def to_numpy(x: ArrayLike) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor or sequence) as a numpy array, on the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def as_embeddings(x: ArrayLike, name: str = "embeddings") -> np.ndarray:
    """Return a C-contiguous float32 matrix ``(n, d)``; reject other ranks and non-finite values."""
    arr = np.ascontiguousarray(to_numpy(x), dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values; check the feature extraction")
    return arr


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` scaled to unit L2 norm (float32, new array); all-zero rows stay zero.

    Same convention as ``torch.nn.functional.normalize`` (DINO) and ``faiss.normalize_L2``:
    inner products of the result are cosine similarities.
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, eps), dtype=np.float32)


def as_labels(y: ArrayLike, n: int, name: str = "labels") -> np.ndarray:
    """Return labels as a 1-D numpy array of length ``n`` (any hashable-sortable dtype)."""
    arr = to_numpy(y)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with {n} entries (one per embedding), "
                         f"got shape {arr.shape}")
    return arr


def encode_labels(*label_arrays: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Map several label arrays onto shared integer codes ``0..C-1``.

    Returns:
        ``(classes, codes)``: the sorted distinct labels ``(C,)`` and one int64 code array per
        input, so that ``classes[codes[i]] == label_arrays[i]``.
    """
    joined = np.concatenate([np.asarray(a) for a in label_arrays])
    classes, inverse = np.unique(joined, return_inverse=True)
    bounds = np.cumsum([0] + [len(a) for a in label_arrays])
    codes = [inverse[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return classes, codes
