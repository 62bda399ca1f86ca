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

Implementation (speed goal: >= 50x a per-query sklearn loop, see ``bench/evaluate.py``):

* Similarities are float32 sgemm pieces of 512 x 512, computed by a pool of worker threads
  (``OMP_NUM_THREADS`` when set, else the cores this process may use), each with one BLAS thread
  so that no idle BLAS thread spins on a core a worker needs (threadpoolctl sets this limit
  process-wide for the duration of the call). Under leave-one-out the matrix is symmetric: each
  off-diagonal piece is computed once and serves the other row block transposed, which halves
  the sgemm work (at most ~N^2/4 similarities, N^2 bytes, wait for their second use; above 1 GiB
  the whole matrix is computed instead).
* Bit-identical embeddings (duplicate images) get bit-identical similarities: sgemm may round
  the same dot product differently at different positions of a piece, so each duplicate
  column takes its original's values, and the two tie as they would in a per-query ranking.
* The same workers then take a few rows at a time. The gallery is permuted so that each class
  is a contiguous column range, so the relevant similarities are a cheap gather. Each row is
  sorted in place (numpy's SIMD sort) and every relevant item's count of items scoring >= it
  is one binary search. AP needs nothing else: the precision at a relevant item is (relevant
  items scoring >= it) / (items scoring >= it), which is sklearn's tie convention. Strict
  positions for MAP@R, P@1 and recall@k add tie-breaks by gallery index, needed only for the
  rare ties within reach of rank R or k. No Python loop runs over gallery items.
* Measured and rejected on the 2-core CPU: a sort-free count (every similarity binned into
  ~N equal-width cells, bincount and prefix sum, exact values only in cells shared with a
  relevant item) was memory-bound and 10-40 % slower than the row sort; ``faiss.IndexFlatIP
  .search`` with k = gallery size was ~15x slower than sgemm + sort for 4k x 4k (faiss runs
  the same sgemm, then a heap per query) and orders tied items by descending id, which
  differs between CPU and GPU indexes. faiss serves the k-NN classifier
  (:mod:`synreal.eval.knn`) and is the independent reference the tests compare the top-k
  rankings against.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from synreal.cpus import job_threads
from synreal.eval.embeddings import (
    ArrayLike,
    as_embeddings,
    as_labels,
    encode_labels,
    l2_normalize,
)

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

DEFAULT_KS = (1, 5, 10)
_BLOCK_ELEMENTS = 1 << 24  # similarity entries per query block of top_k_neighbors (64 MiB)
_PIECE = 512  # rows and columns of one sgemm piece of the similarity matrix
_TASK_ELEMENTS = 1 << 20  # similarity entries per worker task (4 MiB of float32)
_TIE_PROBES = 2  # sorted neighbours compared before a tie group is measured by binary search
_SYMMETRIC_MAX_BYTES = 1 << 30  # leave-one-out holds up to ~N^2/4 float32 similarities


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
    n_classes = int(max(q_codes.max(initial=0), g_codes.max(initial=0)) + 1)
    counts = np.bincount(g_codes, minlength=n_classes)
    classes = _Classes(counts, np.cumsum(counts) - counts, np.argsort(g_codes, kind="stable"))
    gallery = np.ascontiguousarray(gallery[classes.order])  # columns grouped by class
    if loo:  # rows in the same order: the matrix stays symmetric
        row_order, query = classes.order, gallery
    else:  # rows grouped by class too: a task's relevant columns are one or two ranges
        row_order = np.argsort(q_codes, kind="stable")
        query = np.ascontiguousarray(query[row_order])
    ranked = _row_metrics(query, gallery, q_codes[row_order], classes, loo, ks,
                          _duplicates(gallery))
    result = {}
    for name, values in ranked.items():
        result[name] = np.empty_like(values)
        result[name][row_order] = values
    result["n_relevant"] = counts[q_codes] - int(loo)
    return result


def _row_metrics(
    query: np.ndarray,
    gallery: np.ndarray,
    codes: np.ndarray,
    classes: _Classes,
    loo: bool,
    ks: tuple[int, ...],
    duplicates: tuple[np.ndarray, np.ndarray],
) -> dict[str, np.ndarray]:
    """Metrics of every row of ``query @ gallery.T``, computed by a pool of worker threads.

    Args:
        query: ``(M, d)`` normalised queries (under leave-one-out: ``gallery`` itself).
        gallery: ``(N, d)`` normalised gallery, grouped by class as ``classes`` says.
        codes: ``(M,)`` class code of each query.
        classes: where each class's columns are.
        loo: leave-one-out, query ``i`` is column ``i``.
        ks: recall cut-offs.
        duplicates: columns whose embedding repeats an earlier column's, and that column.
    """
    m, n = query.shape[0], gallery.shape[0]
    values = {name: np.full(m, np.nan) for name in _metric_names(ks)}
    rows_per_task = max(1, _TASK_ELEMENTS // max(1, n))
    scratch = threading.local()  # per worker: the rows of its current task

    def task(pieces: list[_Piece], r0: int, a: int, b: int) -> None:
        if not hasattr(scratch, "rows"):
            scratch.rows = np.empty((rows_per_task, n), dtype=np.float32)
        sims = scratch.rows[: b - a]
        _assemble(pieces, a - r0, b - r0, sims, duplicates)

        def unsorted_row(i: int) -> np.ndarray:  # rare: tie-breaks near the top of a ranking
            row = np.empty((1, n), dtype=np.float32)
            _assemble(pieces, a - r0 + i, a - r0 + i + 1, row, duplicates)
            return row[0]

        self_cols = np.arange(a, b) if loo else None
        metrics = _task_metrics(sims, codes[a:b], self_cols, classes, ks, unsorted_row)
        for name, v in metrics.items():
            values[name][a:b] = v

    # One BLAS thread per worker: sgemm pieces and row sorts share the same workers, so no
    # BLAS thread spins idle while the sorts wait for a core.
    with _blas_controller().limit(limits=1, user_api="blas"), \
            ThreadPoolExecutor(job_threads()) as pool:
        symmetric = loo and n * n <= _SYMMETRIC_MAX_BYTES  # N^2/4 float32 = N^2 bytes
        matrix = _Similarities(pool, query, gallery, symmetric)
        running: list[Future] = []
        finished: list[_Piece] = []
        for r0, r1, pieces in matrix.row_blocks():  # the next block's sgemm is already queued
            for job in running:
                job.result()
            matrix.release(finished)  # the previous block's rows are done with its pieces
            running = [pool.submit(task, pieces, r0, a, min(r1, a + rows_per_task))
                       for a in range(r0, r1, rows_per_task)]
            finished = pieces
        for job in running:
            job.result()
    return values


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """The loaded BLAS libraries as threadpoolctl finds them (a scan takes milliseconds)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


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


@dataclass(frozen=True)
class _Classes:
    """The gallery grouped by class: class c holds columns ``starts[c]:starts[c] + counts[c]``.

    ``order[column]`` is the gallery index of a column (the tie-break key); within a class,
    columns are in increasing gallery index.
    """

    counts: np.ndarray
    starts: np.ndarray
    order: np.ndarray


class _Piece(NamedTuple):
    """Columns ``c0:c1`` of a row block: ``array`` (rows x columns), or its transpose."""

    c0: int
    c1: int
    array: np.ndarray
    transposed: bool
    last_use: bool  # the row block holding it is the last to read it


class _Similarities:
    """Row blocks of ``query @ gallery.T``, computed as sgemm pieces by a thread pool.

    With ``symmetric`` (leave-one-out, ``query is gallery``) each off-diagonal piece is
    computed once: piece ``(i, j)``, ``j > i``, serves row block ``i`` as it is and row block
    ``j`` as its transpose, which halves the sgemm work. A piece waits until block ``j`` is
    taken, so at most ~N^2/4 similarities are held. Released pieces are reused as sgemm
    outputs: fresh pages would cost a page fault per 4 KiB.
    """

    def __init__(self, pool: ThreadPoolExecutor, query: np.ndarray, gallery: np.ndarray,
                 symmetric: bool):
        self.pool, self.query, self.gallery, self.symmetric = pool, query, gallery, symmetric
        self.row_bounds = _bounds(query.shape[0])
        self.col_bounds = _bounds(gallery.shape[0])
        self.waiting: dict[int, list[tuple[int, int, Future, bool, bool]]] = {}
        self.free: dict[tuple[int, int], list[np.ndarray]] = {}
        self.lock = threading.Lock()

    def row_blocks(self) -> Iterator[tuple[int, int, list[_Piece]]]:
        """Yield ``(r0, r1, pieces)`` per row block; the next block's sgemm runs meanwhile."""
        if not self.row_bounds:
            return
        pending = self._submit(0)
        for i, (r0, r1) in enumerate(self.row_bounds):
            pieces = [_Piece(c0, c1, job.result(), transposed, last)
                      for c0, c1, job, transposed, last in pending]
            if i + 1 < len(self.row_bounds):
                pending = self._submit(i + 1)
            yield r0, r1, pieces

    def release(self, pieces: list[_Piece]) -> None:
        """Hand back the buffers of a finished row block that no later block reads."""
        with self.lock:
            for piece in pieces:
                if piece.last_use:
                    self.free.setdefault(piece.array.shape, []).append(piece.array)

    def _submit(self, i: int) -> list[tuple[int, int, Future, bool, bool]]:
        r0, r1 = self.row_bounds[i]
        if not self.symmetric:
            return [(c0, c1, self.pool.submit(self._matmul, r0, r1, c0, c1), False, True)
                    for c0, c1 in self.col_bounds]
        own = []
        for j in range(i, len(self.col_bounds)):
            c0, c1 = self.col_bounds[j]
            job = self.pool.submit(self._matmul, r0, r1, c0, c1)
            own.append((c0, c1, job, False, j == i))
            if j > i:
                self.waiting.setdefault(j, []).append((r0, r1, job, True, True))
        return self.waiting.pop(i, []) + own

    def _matmul(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        with self.lock:
            spare = self.free.get((r1 - r0, c1 - c0))
            out = spare.pop() if spare else None
        if out is None:
            out = np.empty((r1 - r0, c1 - c0), dtype=np.float32)
        return np.matmul(self.query[r0:r1], self.gallery[c0:c1].T, out=out)


def _bounds(n: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + _PIECE)) for s in range(0, n, _PIECE)]


def _assemble(pieces: list[_Piece], a: int, b: int, out: np.ndarray,
              duplicates: tuple[np.ndarray, np.ndarray]) -> None:
    """Write rows ``a:b`` of a row block into ``out`` ``(b - a, N)``.

    A column that duplicates an earlier one gets that column's similarities: sgemm may round
    the same dot product differently at different positions of a piece, and an exact
    duplicate image must tie with its twin, as it does in a per-query ranking.
    """
    for c0, c1, array, transposed, _ in pieces:
        out[:, c0:c1] = array[:, a:b].T if transposed else array[a:b]
    copies, originals = duplicates
    if copies.size:
        out[:, copies] = out[:, originals]


def _duplicates(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` that repeat an earlier row bit for bit, and the first row they repeat.

    Rows are first matched on a few columns (a cheap filter: equal rows agree there); only
    rows sharing those values with another row are compared in full.
    """
    step = max(1, x.shape[1] // 4)
    sample_first = _first_equal_row(x[:, ::step])
    maybe = np.flatnonzero(np.bincount(sample_first, minlength=x.shape[0])[sample_first] > 1)
    original = maybe[_first_equal_row(x[maybe])]
    copies = original != maybe
    return maybe[copies], original[copies]


def _first_equal_row(x: np.ndarray) -> np.ndarray:
    """For each row of ``x``, the index of the first row with the same bits."""
    x = np.ascontiguousarray(x)
    rows = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def _task_metrics(
    sims: np.ndarray,
    codes: np.ndarray,
    self_cols: np.ndarray | None,
    classes: _Classes,
    ks: tuple[int, ...],
    unsorted_row: Callable[[int], np.ndarray],
) -> dict[str, np.ndarray]:
    """Metrics of a few queries from their rows of the class-grouped similarity matrix.

    Args:
        sims: ``(B, N)`` C-contiguous similarities to the class-grouped gallery; each row is
            sorted in place.
        codes: ``(B,)`` query class codes.
        self_cols: ``(B,)`` column of each query itself under leave-one-out, else None.
        classes: where each class's columns are.
        ks: recall cut-offs.
        unsorted_row: gives row ``i`` of ``sims`` again, as it was before sorting.
    """
    b, n = sims.shape
    rows = np.arange(b)
    if self_cols is not None:
        sims[rows, self_cols] = -np.inf  # excluded by index: ranks below every item
    size = classes.counts[codes]
    n_rel = size - (self_cols is not None)
    width = int(size.max(initial=0))
    out = {name: np.full(b, np.nan) for name in _metric_names(ks)}
    if width == 0:
        return out

    # Relevant similarities, descending (-inf pads rows of smaller classes and the query).
    offs = np.arange(width)
    in_class = offs < size[:, None]
    flat = np.where(in_class, rows[:, None] * n + classes.starts[codes][:, None] + offs, 0)
    rel = np.where(in_class, sims.take(flat), -np.inf).astype(np.float32)
    rel = np.sort(rel, axis=1)[:, ::-1]
    valid = rel > -np.inf  # the first n_rel entries of each row

    # Items scoring at least, and exactly, each relevant similarity: binary searches in the
    # sorted row.
    sims.sort(axis=1)
    n_below = np.empty(rel.shape, dtype=np.int64)
    for i in range(b):
        n_below[i] = np.searchsorted(sims[i], rel[i], side="left")
    n_ge = n - n_below

    # AP as sklearn: each relevant item gets the precision at the end of its tie group.
    group_end = np.ones(rel.shape, dtype=bool)
    group_end[:, :-1] = rel[:, 1:] != rel[:, :-1]
    rel_ge = np.minimum.accumulate(np.where(group_end, offs + 1, width)[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(valid, rel_ge / n_ge, 0.0).sum(1) / n_rel

    # Strict positions, ties by gallery index. Only items that can reach rank R or k need
    # them: those scoring at least the reach-th highest similarity of their row.
    reach = np.maximum(n_rel, max(ks, default=1))
    near_top = valid & (rel >= sims[rows, np.maximum(n - reach, 0)][:, None])
    n_equal = _tie_sizes(sims, rel, n_below, near_top)  # 1 elsewhere
    position = n_ge - n_equal + 1  # before tie-breaks; beyond reach elsewhere
    tied = near_top & (n_equal > 1)
    for i in np.flatnonzero(tied.any(axis=1)):
        row = unsorted_row(i)
        if self_cols is not None:
            row[self_cols[i]] = -np.inf
        for j in np.flatnonzero(tied[i]):
            position[i, j] += _tied_before(row, rel[i], j, codes[i], classes)
    in_top_r = valid & (position <= n_rel[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        map_at_r = np.where(in_top_r, (offs + 1) / position, 0.0).sum(1) / n_rel
    best = position[:, 0]  # the first relevant item of the ranking
    out["map"], out["map_at_r"], out["p_at_1"] = ap, map_at_r, (best <= 1).astype(float)
    for k in ks:
        out[f"recall_at_{k}"] = (best <= k).astype(float)
    no_rel = n_rel <= 0
    for v in out.values():
        v[no_rel] = np.nan
    return out


def _tie_sizes(
    ranked: np.ndarray, rel: np.ndarray, n_below: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """How many items of each row score exactly each wanted relevant similarity (1 elsewhere).

    ``rel[i, j]`` sits at ``ranked[i, n_below[i, j]]`` and its tie group is the run of equal
    values from there. Real embeddings rarely tie, so a couple of neighbour probes settle almost
    every item; longer runs are measured by a binary search.
    """
    b, n = ranked.shape
    flat_ranked = ranked.reshape(-1)
    row_start = (np.arange(b) * n)[:, None]
    n_equal = np.ones(rel.shape, dtype=np.int64)
    running = wanted
    for step in range(1, _TIE_PROBES + 1):
        at = n_below + step
        nxt = flat_ranked.take(row_start + np.minimum(at, n - 1))
        running = running & (at < n) & (nxt == rel)
        if not running.any():
            return n_equal
        n_equal += running
    for i in np.flatnonzero(running.any(axis=1)):
        j = running[i]
        n_equal[i, j] = np.searchsorted(ranked[i], rel[i, j], side="right") - n_below[i, j]
    return n_equal


def _tied_before(row: np.ndarray, rel: np.ndarray, j: int, code: int, classes: _Classes) -> int:
    """Items scoring exactly ``rel[j]`` with a lower gallery index than relevant item ``j``.

    Args:
        row: ``(N,)`` the query's similarities to the class-grouped gallery.
        rel: ``(W,)`` its relevant similarities, descending (ties in gallery index order).
        j: the relevant item's rank among the relevant items (0-based).
        code: the query's class.
        classes: where each class's columns are.

    The relevant items tied with ``rel[j]`` fill ranks ``first..`` of ``rel``; in gallery index
    order, item ``j`` is the ``(j - first)``-th of them, which identifies its column.
    """
    value = rel[j]
    first = int(np.searchsorted(-rel, -value, side="left"))
    start = classes.starts[code]
    same = np.flatnonzero(row[start : start + classes.counts[code]] == value)
    own = classes.order[start + same[j - first]]
    return int(np.count_nonzero((row == value) & (classes.order < own)))


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
