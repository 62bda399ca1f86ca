"""Percentile bootstrap confidence intervals over test items (images or queries).

Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), ch. 13: resample the n
per-item values with replacement B times, take the mean of each resample, and report the
``alpha/2`` and ``1 - alpha/2`` quantiles of those means. Every metric we report is a mean of
per-item values (correct or not, AP, ...), so one function covers all of them.

For two runs evaluated on the *same* items (real vs synthetic pretraining), the paired
bootstrap resamples items, not runs: the same index draw is applied to both, which is the
bootstrap of the per-item differences ``a - b``. The CI of the difference is much tighter than
two overlapping marginal CIs suggest when the runs err on the same items.

NaN items (e.g. retrieval queries without a relevant item) are dropped before resampling; a
pair is dropped when either value is NaN. Resample indices are drawn from
``numpy.random.default_rng(seed)`` in chunks, so the result depends on the seed only.

**Replicate seeds** (:func:`two_level_bootstrap_ci`, :func:`paired_two_level_bootstrap_diff`):
with S training seeds evaluated on the same n test items, the statistic is the mean over
seeds of each seed's mean, and one resample draws S seeds with replacement, then, for each
drawn seed, n items with replacement from that seed's values (Davison & Hinkley, "Bootstrap
Methods and their Application" (1997), Sec. 3.8, resampling both stages). Its variance is
``(between + within) / S`` with ``between = mean_s (m_s - m)^2`` over the seeds' means and
``within = mean_s var_s / n`` (each seed's population variance over its items): it carries the
seed-to-seed spread that a one-level bootstrap over items ignores. With few seeds the seed
level is coarse: ``between`` estimates ``(S - 1) / S`` of the true seed variance (half of it at
S = 2), while ``within`` is counted in full on top of the part already in ``between``; 3 or
more seeds make the interval trustworthy. For two runs, seed ``i`` of one is paired with seed
``i`` of the other and the same item draw applies to both: the two-level bootstrap of the
per-seed, per-item differences.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from synreal.eval.embeddings import ArrayLike, to_numpy

N_RESAMPLES = 2000
_CHUNK_ELEMENTS = 1 << 22  # resampled values held at once (32 MiB of float64)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval ``[lo, hi]``."""

    estimate: float
    lo: float
    hi: float

    def as_dict(self) -> dict[str, float]:
        """``{"estimate", "lo", "hi"}`` for JSON metrics files."""
        return {"estimate": self.estimate, "lo": self.lo, "hi": self.hi}


def bootstrap_ci(
    values: ArrayLike,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` ``(n,)`` with its percentile bootstrap CI.

    Example:
        >>> ci = bootstrap_ci(np.r_[np.ones(80), np.zeros(20)], seed=0)
        >>> round(ci.estimate, 2), ci.lo < 0.8 < ci.hi
        (0.8, True)
    """
    x = _clean(to_numpy(values).astype(np.float64))
    means = bootstrap_means(x, n_resamples, seed)
    return percentile_interval(float(x.mean()), means, confidence)


def paired_bootstrap_diff(
    values_a: ArrayLike,
    values_b: ArrayLike,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``mean(a) - mean(b)`` over the same items with its paired bootstrap CI.

    Args:
        values_a: ``(n,)`` per-item values of run A.
        values_b: ``(n,)`` per-item values of run B on the same items, in the same order.

    An interval that excludes 0 says the runs differ at the chosen confidence.
    """
    a, b = to_numpy(values_a).astype(np.float64), to_numpy(values_b).astype(np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-D shapes, got {a.shape} and {b.shape}")
    diff = _clean(a - b)  # NaN when either is NaN
    means = bootstrap_means(diff, n_resamples, seed)
    return percentile_interval(float(diff.mean()), means, confidence)


def bootstrap_cis(
    per_item: dict[str, ArrayLike],
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """:func:`bootstrap_ci` of several metrics of the same items, drawing the resamples once.

    The draw depends only on the seed and the number ``n`` of non-NaN items, so every metric
    with the same ``n`` (all of them, unless their NaN items differ) reuses one draw: the
    intervals equal :func:`bootstrap_ci` per metric, bit for bit, and drawing, most of the
    cost, is done once instead of once per metric (six retrieval metrics: ~3x faster).
    """
    cleaned = {}
    for name, values in per_item.items():
        try:
            cleaned[name] = _clean(to_numpy(values).astype(np.float64))
        except ValueError as error:
            raise ValueError(f"metric {name!r}: {error}") from None
    by_size: dict[int, list[str]] = defaultdict(list)
    for name, x in cleaned.items():
        by_size[x.size].append(name)
    intervals = {}
    for names in by_size.values():
        means = bootstrap_means(np.stack([cleaned[k] for k in names]), n_resamples, seed)
        for name, replicates in zip(names, means, strict=True):
            intervals[name] = percentile_interval(float(cleaned[name].mean()), replicates,
                                                  confidence)
    return {name: intervals[name] for name in per_item}


def two_level_bootstrap_ci(
    values: ArrayLike,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean over seeds of each seed's mean, with its two-level percentile bootstrap CI.

    Args:
        values: ``(S, n)`` per-item values of S replicate seeds on the same n items (row ``s``
            is seed ``s``); an item that is NaN in any seed is dropped from every seed.

    Example:
        >>> seeds = np.r_[np.ones(70), np.zeros(30)], np.r_[np.ones(90), np.zeros(10)]
        >>> ci = two_level_bootstrap_ci(np.stack(seeds), seed=0)
        >>> round(ci.estimate, 2), ci.lo < 0.8 < ci.hi
        (0.8, True)
    """
    x = _clean_seeds(to_numpy(values).astype(np.float64))
    means = two_level_means(x, n_resamples, seed)
    return percentile_interval(float(x.mean()), means, confidence)


def paired_two_level_bootstrap_diff(
    values_a: ArrayLike,
    values_b: ArrayLike,
    n_resamples: int = N_RESAMPLES,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """``mean(a) - mean(b)`` over paired seeds and items with its two-level bootstrap CI.

    Args:
        values_a: ``(S, n)`` per-item values of run A, seed ``s`` in row ``s``.
        values_b: ``(S, n)`` of run B: row ``s`` is paired with row ``s`` of A (same seed
            index) and column ``j`` with column ``j`` (same item).
    """
    a, b = to_numpy(values_a).astype(np.float64), to_numpy(values_b).astype(np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired replicate values need equal (seeds, items) shapes, got "
                         f"{a.shape} and {b.shape}")
    diff = _clean_seeds(a - b)  # NaN when either is NaN
    means = two_level_means(diff, n_resamples, seed)
    return percentile_interval(float(diff.mean()), means, confidence)


def two_level_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Statistics ``(B,)`` of two-level resamples of ``values`` ``(S, n)``.

    Each resample draws S seed rows with replacement, then n items with replacement within
    each drawn row, and averages all ``S * n`` drawn values (equal items per seed: the mean
    of the drawn seeds' means). Drawn in chunks of about ``_CHUNK_ELEMENTS`` values.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n_seeds, n = values.shape
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_seeds * n, 1))
    out = []
    for r0 in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - r0)
        rows = rng.integers(0, n_seeds, size=(size, n_seeds))
        items = rng.integers(0, n, size=(size, n_seeds, n))
        out.append(values[rows[..., None], items].mean(axis=(1, 2)))
    return np.concatenate(out)


def bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Means of ``n_resamples`` resamples with replacement of ``values``.

    ``values`` is ``(n,)``, giving ``(B,)``, or ``(m, n)``: m metrics of the same n items,
    each resample applied to every row, giving ``(m, B)``. Memory stays at one chunk of
    indices and one of resampled values whatever ``m``.
    """
    rows = np.atleast_2d(values)
    chunks = [np.stack([row[indices].mean(axis=1) for row in rows])
              for indices in resample_indices(rows.shape[1], n_resamples, seed)]
    means = np.concatenate(chunks, axis=1)
    return means if values.ndim == 2 else means[0]


def resample_indices(n: int, n_resamples: int,
                     seed: int | np.random.SeedSequence) -> Iterator[np.ndarray]:
    """Item indices of ``n_resamples`` resamples with replacement of ``n`` items, in chunks.

    Yields ``(b, n)`` int64 arrays, one resample per row, with ``b * n`` at most about
    ``_CHUNK_ELEMENTS`` so no chunk of resampled values outgrows memory. Together the chunks
    equal ``default_rng(seed).integers(0, n, size=(n_resamples, n))`` whatever the chunk
    size, so every bootstrap here with the same seed and ``n`` draws the same resamples.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for r0 in range(0, n_resamples, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_resamples - r0), n))


def _clean(x: np.ndarray) -> np.ndarray:
    if x.ndim != 1:
        raise ValueError(f"per-item values must be 1-D, got shape {x.shape}")
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("no per-item values to bootstrap (empty or all NaN)")
    return x


def _clean_seeds(x: np.ndarray) -> np.ndarray:
    """``(S, n)`` values without the items that are NaN in any seed."""
    if x.ndim != 2:
        raise ValueError(f"replicate values must be (seeds, items), got shape {x.shape}")
    x = x[:, ~np.isnan(x).any(axis=0)]
    if x.size == 0:
        raise ValueError("no per-item values to bootstrap (empty or all NaN)")
    return x


def percentile_interval(estimate: float, replicates: np.ndarray,
                        confidence: float = 0.95) -> Interval:
    """The percentile interval: ``estimate`` with the quantiles of its replicates.

    ``replicates`` are the ``(B,)`` statistics of the resamples; the bounds are their
    ``alpha/2`` and ``1 - alpha/2`` quantiles, ``alpha = 1 - confidence``.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1 - confidence
    lo, hi = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return Interval(estimate, float(lo), float(hi))
