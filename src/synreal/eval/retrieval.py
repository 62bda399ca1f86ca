"""Retrieval metrics by cosine similarity: mAP, mAP@R, precision@1, recall@k.

Every query ranks the whole gallery by cosine similarity (inner product of L2-normalised
float32 vectors); relevant = same label. With no gallery, each query ranks the other queries
(leave-one-out): the query itself is removed by its index, never by its similarity, so an exact
duplicate image stays in the gallery and counts as a (correct or wrong) neighbour.

Metrics, per query q with R relevant gallery items (means over queries are reported):

* ``ap``: average precision over the full ranking, exactly as
  ``sklearn.metrics.average_precision_score(relevant, similarity)``. Ties are handled like
  sklearn: a group of equal similarities enters the ranking at once, so every relevant item
  of the group gets the precision at the group's end. This makes AP independent of the order
  of tied items.
* ``map_at_r``: MAP@R of Musgrave et al., "A Metric Learning Reality Check" (ECCV 2020):
  ``(1/R) * sum_{i<=R} P(i) * rel(i)`` over the first R ranks.
* ``p_at_1``: whether the first-ranked item is relevant.
* ``recall_at_k``: as in metric-learning papers (e.g. Oh Song et al., CVPR 2016), 1 when
  *any* relevant item is among the first k ranks, else 0 (not the IR recall |rel in top k|/R).

Rank-based metrics (``map_at_r``, ``p_at_1``, ``recall_at_k``) need a strict order: equal
similarities are ordered by gallery index, lower first (a stable sort). Queries with no
relevant item in the gallery (a class of size 1 under leave-one-out, or a query class missing
from the gallery) have no defined AP: their per-query values are NaN, they are left out of
every mean, and ``n_queries_no_relevant`` reports how many there were.

Implementation: query blocks of the dense similarity matrix are one sgemm each; a relevant
item's precision only needs "how many gallery items score >= s" and "how many relevant items
score >= s", which come from one SIMD row sort of the block plus a batched binary search, so no
Python loop runs over queries or gallery items. The gallery is permuted so that each class is
a contiguous column range, which makes the relevant similarities a cheap gather. We do not
use ``faiss.IndexFlatIP.search`` with k = gallery size for the full ranking: on a 2-core CPU it
measured ~15x slower than sgemm + sort for 4k x 4k (faiss runs the same sgemm, then a heap per
query) and it orders tied items by descending id, which differs between CPU and GPU indexes.
faiss serves the k-NN classifier (:mod:`synreal.eval.knn`) and is the independent reference
the tests compare the top-k rankings against.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from synreal.eval.embeddings import (
    ArrayLike,
    as_embeddings,
    as_labels,
    encode_labels,
    l2_normalize,
)

DEFAULT_KS = (1, 5, 10)
_BLOCK_ELEMENTS = 1 << 24  # similarity entries per query block (64 MiB of float32)


def retrieval_metrics(
    query_emb: ArrayLike,
    query_labels: ArrayLike,
    gallery_emb: ArrayLike | None = None,
    gallery_labels: ArrayLike | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean retrieval metrics of ``query_emb`` against a gallery (or leave-one-out).

    Args:
        query_emb: ``(M, d)`` query embeddings, numpy or torch; normalised here.
        query_labels: ``(M,)`` labels; relevant = equal label.
        gallery_emb: ``(N, d)`` gallery embeddings, or None for leave-one-out in the queries.
        gallery_labels: ``(N,)`` labels of the gallery (required with ``gallery_emb``).
        ks: the k of ``recall_at_k``.

    Returns:
        ``{"map", "map_at_r", "p_at_1", "recall_at_1", ...}`` as floats (means over queries
        that have at least one relevant item), plus ``n_queries`` (queries averaged) and
        ``n_queries_no_relevant`` (queries left out).

    Example:
        >>> m = retrieval_metrics(np.eye(3), [0, 0, 1])
        >>> m["n_queries"], m["n_queries_no_relevant"]
        (2, 1)
    """
    per_query = retrieval_per_query(query_emb, query_labels, gallery_emb, gallery_labels, ks)
    return summarize(per_query)


def summarize(per_query: dict[str, np.ndarray]) -> dict[str, float]:
    """Means of :func:`retrieval_per_query` values over the queries with a relevant item."""
    valid = per_query["n_relevant"] > 0
    out: dict[str, float] = {}
    for key, values in per_query.items():
        if key != "n_relevant":
            out[key] = float(values[valid].mean()) if valid.any() else float("nan")
    out["n_queries"] = int(valid.sum())
    out["n_queries_no_relevant"] = int((~valid).sum())
    return out


def retrieval_per_query(
    query_emb: ArrayLike,
    query_labels: ArrayLike,
    gallery_emb: ArrayLike | None = None,
    gallery_labels: ArrayLike | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, np.ndarray]:
    """Per-query retrieval values (for bootstrap CIs); same arguments as :func:`retrieval_metrics`.

    Returns:
        ``{"map": (M,), "map_at_r": (M,), "p_at_1": (M,), "recall_at_<k>": (M,)}`` float64
        arrays, NaN for queries without a relevant item, and ``"n_relevant": (M,)`` int64.
    """
    query, gallery, q_codes, g_codes, loo = _prepare(
        query_emb, query_labels, gallery_emb, gallery_labels
    )
    ks = tuple(int(k) for k in ks)
    if any(k < 1 for k in ks):
        raise ValueError(f"recall ks must be >= 1, got {ks}")
    order = np.argsort(g_codes, kind="stable")  # gallery columns grouped by class
    gallery_by_class = np.ascontiguousarray(gallery[order])
    counts = np.bincount(g_codes, minlength=int(max(q_codes.max(initial=0), g_codes.max()) + 1))
    starts = np.cumsum(counts) - counts
    column_of = np.empty_like(order)
    column_of[order] = np.arange(order.size)

    m = query.shape[0]
    block = max(1, _BLOCK_ELEMENTS // max(1, gallery.shape[0]))
    result = {name: np.full(m, np.nan) for name in _metric_names(ks)}
    result["n_relevant"] = counts[q_codes] - int(loo)
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        self_cols = column_of[r0:r1] if loo else None
        sims = query[r0:r1] @ gallery_by_class.T  # (B, N) cosine similarities
        values = _block_metrics(sims, q_codes[r0:r1], counts, starts, order, self_cols, ks)
        for name, v in values.items():
            result[name][r0:r1] = v
    return result


def _metric_names(ks: tuple[int, ...]) -> list[str]:
    return ["map", "map_at_r", "p_at_1"] + [f"recall_at_{k}" for k in ks]


def _prepare(query_emb, query_labels, gallery_emb, gallery_labels):
    query = l2_normalize(as_embeddings(query_emb, "query_emb"))
    q_lab = as_labels(query_labels, query.shape[0], "query_labels")
    if gallery_emb is None:
        if gallery_labels is not None:
            raise ValueError("gallery_labels given without gallery_emb")
        _, (q_codes,) = encode_labels(q_lab)
        return query, query, q_codes, q_codes, True
    if gallery_labels is None:
        raise ValueError("gallery_emb given without gallery_labels")
    gallery = l2_normalize(as_embeddings(gallery_emb, "gallery_emb"))
    if gallery.shape[1] != query.shape[1]:
        raise ValueError(f"query dim {query.shape[1]} != gallery dim {gallery.shape[1]}")
    g_lab = as_labels(gallery_labels, gallery.shape[0], "gallery_labels")
    _, (q_codes, g_codes) = encode_labels(q_lab, g_lab)
    return query, gallery, q_codes, g_codes, False


def _block_metrics(
    sims: np.ndarray,
    q_codes: np.ndarray,
    counts: np.ndarray,
    starts: np.ndarray,
    order: np.ndarray,
    self_cols: np.ndarray | None,
    ks: tuple[int, ...],
) -> dict[str, np.ndarray]:
    """Metrics of one query block.

    Args:
        sims: ``(B, N)`` similarities to the class-grouped gallery (modified in place).
        q_codes: ``(B,)`` query class codes.
        counts, starts: per class, its number of gallery items and first column.
        order: ``(N,)`` original gallery index of each column (tie-break key).
        self_cols: ``(B,)`` column of each query itself under leave-one-out, else None.
        ks: recall cut-offs.
    """
    b, n = sims.shape
    rows = np.arange(b)
    if self_cols is not None:
        sims[rows, self_cols] = -np.inf  # excluded by index: ranks below every real item
    n_rel = counts[q_codes] - (self_cols is not None)

    # Similarities of the relevant items: the query class's column range, padded with -inf.
    width = int(counts[q_codes].max(initial=0))
    offs = np.arange(width)
    in_class = offs[None, :] < counts[q_codes][:, None]
    rel_cols = np.where(in_class, starts[q_codes][:, None] + offs[None, :], 0)
    rel = np.where(in_class, np.take_along_axis(sims, rel_cols, axis=1), -np.inf)
    valid = rel > -np.inf  # (B, width): a real relevant item (self is -inf)

    sorted_sims = torch.from_numpy(np.sort(sims, axis=1))
    rel_t = torch.from_numpy(np.ascontiguousarray(rel))
    n_ge = n - torch.searchsorted(sorted_sims, rel_t, side="left").numpy()
    n_gt = n - torch.searchsorted(sorted_sims, rel_t, side="right").numpy()
    rel_sorted = torch.from_numpy(np.sort(rel, axis=1))
    rel_ge = width - torch.searchsorted(rel_sorted, rel_t, side="left").numpy()

    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(valid, rel_ge / np.maximum(n_ge, 1), 0.0).sum(1) / n_rel

    # Strict ranks, ties by gallery index: position among all items and among relevant ones.
    position = n_gt + 1 + _tied_before(sims, rel, rel_cols, valid & (n_ge - n_gt > 1), order)
    rel_rank = np.empty_like(n_ge)
    np.put_along_axis(
        rel_rank, np.argsort(-rel, axis=1, kind="stable"), np.arange(1, width + 1)[None, :], 1
    )
    in_top_r = valid & (position <= n_rel[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        map_at_r = np.where(in_top_r, rel_rank / position, 0.0).sum(1) / n_rel
    never = np.iinfo(np.int64).max
    best = np.where(valid, position, never).min(axis=1, initial=never)  # first relevant rank
    out = {"map": ap, "map_at_r": map_at_r, "p_at_1": (best <= 1).astype(float)}
    for k in ks:
        out[f"recall_at_{k}"] = (best <= k).astype(float)
    no_rel = n_rel <= 0
    for v in out.values():
        v[no_rel] = np.nan
    return out


def _tied_before(
    sims: np.ndarray,
    rel: np.ndarray,
    rel_cols: np.ndarray,
    tied: np.ndarray,
    order: np.ndarray,
) -> np.ndarray:
    """For tied relevant items, how many items of equal similarity have a lower gallery index.

    Exact ties are rare for real embeddings (duplicate images), so only the tied pairs are
    scanned, in chunks of at most ``_BLOCK_ELEMENTS`` comparisons.
    """
    out = np.zeros(rel.shape, dtype=np.int64)
    rows, slots = np.nonzero(tied)
    chunk = max(1, _BLOCK_ELEMENTS // sims.shape[1])
    for c0 in range(0, rows.size, chunk):
        r, s = rows[c0 : c0 + chunk], slots[c0 : c0 + chunk]
        own_index = order[rel_cols[r, s]]
        equal = sims[r] == rel[r, s][:, None]
        out[r, s] = (equal & (order[None, :] < own_index[:, None])).sum(1)
    return out


def top_k_neighbors(
    query_emb: ArrayLike,
    gallery_emb: ArrayLike | None = None,
    k: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar gallery items per query, in the ranking the metrics use.

    Args:
        query_emb: ``(M, d)`` queries.
        gallery_emb: ``(N, d)`` gallery, or None for leave-one-out within the queries.
        k: neighbours per query (at most the gallery size, minus one under leave-one-out).

    Returns:
        ``(indices, similarities)``, both ``(M, k)``: gallery indices ordered by decreasing
        similarity, ties by increasing index, and their cosine similarities.
    """
    query = l2_normalize(as_embeddings(query_emb, "query_emb"))
    loo = gallery_emb is None
    gallery = query if loo else l2_normalize(as_embeddings(gallery_emb, "gallery_emb"))
    n = gallery.shape[0] - int(loo)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for this gallery, got {k}")
    m = query.shape[0]
    idx = np.empty((m, k), dtype=np.int64)
    val = np.empty((m, k), dtype=np.float32)
    block = max(1, _BLOCK_ELEMENTS // gallery.shape[0])
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        sims = query[r0:r1] @ gallery.T
        if loo:
            sims[np.arange(r1 - r0), np.arange(r0, r1)] = -np.inf
        kth = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k]
        rows, cols = np.nonzero(sims >= kth[:, None])  # top k plus items tied with the k-th
        picked = np.lexsort((cols, -sims[rows, cols], rows))
        rows, cols = rows[picked], cols[picked]
        first = np.searchsorted(rows, np.arange(r1 - r0))
        keep = np.arange(rows.size) - first[rows] < k
        idx[r0:r1] = cols[keep].reshape(-1, k)
        val[r0:r1] = sims[rows[keep], cols[keep]].reshape(-1, k)
    return idx, val
