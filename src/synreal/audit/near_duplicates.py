"""Near-duplicates: pairs of images whose embeddings have cosine similarity above a threshold.

Inside a synthetic set they mean wasted samples (a sampler collapsing onto one image);
between a training set and the downstream test set they mean leakage. Search is exact
inner product on L2-normalised embeddings (``faiss.IndexFlatIP``): ``range_search`` for
every pair above the threshold inside one set, ``search`` with k = 1 for the nearest
neighbour of each image in another set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from synreal.eval.embeddings import ArrayLike, as_embeddings, l2_normalize

if TYPE_CHECKING:
    import faiss


def _index(base: np.ndarray) -> faiss.IndexFlatIP:
    import faiss

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index


def pairs_within(embeddings: ArrayLike, threshold: float) -> pd.DataFrame:
    """Every pair ``i < j`` with cosine similarity ``> threshold``: columns ``i, j, similarity``."""
    x = l2_normalize(as_embeddings(embeddings))
    if len(x) < 2:
        return pd.DataFrame({"i": [], "j": [], "similarity": []})
    lims, sims, ids = _index(x).range_search(x, float(threshold))
    rows = np.repeat(np.arange(len(x)), np.diff(lims.astype(np.int64)))
    keep = ids > rows
    return pd.DataFrame({"i": rows[keep].astype(np.int64), "j": ids[keep].astype(np.int64),
                         "similarity": sims[keep].astype(np.float64)})


def nearest_other(embeddings: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the most similar *other* row: ``(similarity (n,), index (n,))``.

    With one row the similarity is NaN and the index -1.
    """
    x = l2_normalize(as_embeddings(embeddings))
    if len(x) < 2:
        return np.full(len(x), np.nan), np.full(len(x), -1)
    sims, ids = _index(x).search(x, 2)
    self_first = ids[:, 0] == np.arange(len(x))
    best = np.where(self_first, 1, 0)  # an exact twin may be ranked before the row itself
    return (sims[np.arange(len(x)), best].astype(np.float64),
            ids[np.arange(len(x)), best].astype(np.int64))


def nearest_in(queries: ArrayLike, base: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, its most similar row of ``base``: ``(similarity (n,), index (n,))``."""
    q = l2_normalize(as_embeddings(queries, "queries"))
    b = l2_normalize(as_embeddings(base, "base"))
    if len(b) == 0:
        return np.full(len(q), np.nan), np.full(len(q), -1)
    sims, ids = _index(b).search(q, 1)
    return sims[:, 0].astype(np.float64), ids[:, 0].astype(np.int64)


def calibrate_threshold(real: ArrayLike, quantile: float, seed: int = 0) -> dict:
    """A near-duplicate threshold from real data: distinct photographs set the bar.

    The real images are split at random into two disjoint halves; each image of the first
    half finds its nearest neighbour in the second; the threshold is the ``quantile`` of
    those similarities (e.g. 0.999: one real pair in a thousand is at least this close).

    Returns:
        ``{"threshold", "quantile", "n_pairs"}``; the threshold is NaN with fewer than two
        real images.
    """
    x = as_embeddings(real)
    order = np.random.default_rng(seed).permutation(len(x))
    half = len(x) // 2
    if half < 1:
        return {"threshold": float("nan"), "quantile": quantile, "n_pairs": 0}
    sims, _ = nearest_in(x[order[:half]], x[order[half:]])
    return {"threshold": float(np.quantile(sims, quantile)), "quantile": quantile,
            "n_pairs": int(half)}
