"""Diversity: mean pairwise cosine distance of image embeddings (MixDiff Section 5.3).

For unit vectors ``x_i`` the mean over ordered pairs ``i != j`` of ``1 - x_i . x_j`` equals
``1 - (||sum_i x_i||^2 - n) / (n (n - 1))``, so the exact value costs O(n d), not O(n^2 d):
15k embeddings take milliseconds and no subsampling is needed.

Its 95 % CI is a percentile bootstrap over images (:func:`diversity_bootstrap`). A resample
of ``n`` draws, ``c_i`` of them of image ``i``, has the same closed form: the similarity
summed over ordered pairs of distinct *draws* is ``||sum_i c_i x_i||^2 - n``, so a block of
resamples is one matrix product ``C @ X`` (``C``: ``(B, n)`` draw counts). Two draws of
the same image are a pair at distance 0, as they would be in the resampled set itself; this
pulls a resample's expected diversity to ``(1 - 1/n)`` times the estimate, far inside the
CI's width (of order ``1/sqrt(n)``) unless every pair of images is equally far apart.
"""

from __future__ import annotations

import numpy as np

from synreal.eval.bootstrap import Interval, percentile_interval, resample_indices
from synreal.eval.embeddings import ArrayLike, as_embeddings, l2_normalize


def mean_pairwise_cosine_distance(embeddings: ArrayLike) -> float:
    """Mean of ``1 - cos(x_i, x_j)`` over all pairs ``i != j`` of ``(n, d)`` embeddings.

    Returns NaN for fewer than two rows. Zero rows count as orthogonal to everything.

    Example:
        >>> mean_pairwise_cosine_distance(np.eye(3))
        1.0
    """
    x = l2_normalize(as_embeddings(embeddings)).astype(np.float64)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    total = x.sum(axis=0)
    self_similarity = float((x * x).sum())  # n, less the zero rows
    return float(1.0 - (total @ total - self_similarity) / (n * (n - 1)))


def resampled_diversity(embeddings: ArrayLike, indices: np.ndarray) -> np.ndarray:
    """:func:`mean_pairwise_cosine_distance` of each resample ``embeddings[indices[r]]``.

    Args:
        embeddings: ``(n, d)`` image embeddings.
        indices: ``(B, k)`` row indices, one resample per row (drawn with replacement).

    Returns:
        ``(B,)`` float64, NaN when ``k < 2``. Vectorised over resamples through the draw
        counts (module docstring); equals a loop over resamples without forming them.
    """
    x = l2_normalize(as_embeddings(embeddings)).astype(np.float64)
    indices = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    b, k = indices.shape
    if k < 2:
        return np.full(b, np.nan)
    n = x.shape[0]
    rows = np.arange(b, dtype=np.int64)[:, None] * n
    counts = np.bincount((indices + rows).ravel(), minlength=b * n).reshape(b, n)
    counts = counts.astype(np.float64)
    totals = counts @ x  # (B, d): sum of the drawn unit vectors
    self_similarity = counts @ (x * x).sum(axis=1)  # k, less draws of zero rows
    pair_similarity = (totals * totals).sum(axis=1) - self_similarity
    return 1.0 - pair_similarity / (k * (k - 1))


def diversity_bootstrap(embeddings: ArrayLike, n_resamples: int, confidence: float = 0.95,
                        seed: int = 0) -> Interval:
    """Diversity of ``(n, d)`` embeddings with its percentile bootstrap CI over images.

    Resamples are :func:`synreal.eval.bootstrap.resample_indices` (``n`` draws each, seeded);
    NaN estimate and bounds for fewer than two rows.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 8))
        >>> ci = diversity_bootstrap(x, n_resamples=1000)
        >>> bool(ci.lo < ci.estimate < ci.hi)
        True
    """
    x = as_embeddings(embeddings)
    estimate = mean_pairwise_cosine_distance(x)
    if x.shape[0] < 2:
        return Interval(estimate, float("nan"), float("nan"))
    replicates = np.concatenate([resampled_diversity(x, indices)
                                 for indices in resample_indices(len(x), n_resamples, seed)])
    return percentile_interval(estimate, replicates, confidence)


def per_class_diversity(embeddings: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """:func:`mean_pairwise_cosine_distance` within each class: ``{str(label): value}``."""
    x = as_embeddings(embeddings)
    y = np.asarray(labels)
    return {str(c): mean_pairwise_cosine_distance(x[y == c]) for c in np.unique(y)}
