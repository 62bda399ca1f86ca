"""Read evaluation artifacts and turn them into table cells with confidence intervals.

A *run* in a table is a dict of artifact directories by evaluation stage
(``probe``, ``knn``, ``retrieval``); every number shown is read from the ``metrics.json``
of the directory named there, so it is traceable by key to the artifact that produced it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from synreal.errors import DataError

#: Table columns: (title, evaluation stage, metric key in its metrics.json).
MAIN_METRICS = (
    ("linear top-1", "probe", "top1"),
    ("k-NN top-1 (k=20)", "knn", "top1_k20"),
    ("retrieval mAP", "retrieval", "map"),
    ("R@1", "retrieval", "recall_at_1"),
)


#: Most decimals a cell is written with (:meth:`Cell.decimals`).
MAX_DECIMALS = 4


@dataclass(frozen=True)
class Cell:
    """A metric with its 95 % CI, as fractions."""

    estimate: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return self.plain(1, scale=100.0)

    def decimals(self, digits: int, scale: float = 1.0) -> int:
        """Decimals to write the cell with: ``digits``, or more where a CI excludes 0.

        One decimal would write a CI of [-0.04, -0.01] as ``[-0.0, -0.0]`` beside a "differs"
        verdict; the written bounds keep their side of 0, up to MAX_DECIMALS decimals.
        """
        if not (np.isfinite(self.lo) and np.isfinite(self.hi)):
            return digits
        for places in range(digits, max(digits, MAX_DECIMALS) + 1):
            lo, hi = round(scale * self.lo, places), round(scale * self.hi, places)
            if (self.lo <= 0 or lo > 0) and (self.hi >= 0 or hi < 0):
                return places
        return max(digits, MAX_DECIMALS)

    def plain(self, digits: int, scale: float = 1.0, sign: str = "") -> str:
        """``"estimate [lo, hi]"`` times ``scale``, ``digits`` decimals or more ("n/a" if NaN).

        More decimals where a bound would round to 0 across it (:meth:`decimals`).

        ``str(cell)`` is ``cell.plain(1, scale=100)``, the percent form; measures in their
        own units (a median, a distance, FID) use ``plain(digits)``, so every cell of every
        table writes its CI the same way. ``sign="+"`` writes every number with its sign.
        """
        if not np.isfinite(self.estimate):
            return "n/a"
        form = f"{sign}.{self.decimals(digits, scale)}f"
        return (f"{scale * self.estimate:{form}} "
                f"[{scale * self.lo:{form}}, {scale * self.hi:{form}}]")


def read_metric(artifact: str | Path, metric: str) -> Cell:
    """One metric of an evaluation artifact with its CI."""
    path = Path(artifact) / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: the artifact is incomplete; delete "
                        f"{Path(artifact)} and rerun snakemake to rebuild it.")
    metrics = json.loads(path.read_text())
    if metric not in metrics:
        raise DataError(f"{path} has no metric {metric!r} (it has {sorted(metrics)}).")
    value = metrics[metric]
    return Cell(value["estimate"], value["lo"], value["hi"])


def read_per_item(artifact: str | Path, metric: str) -> pd.Series:
    """Per-image (or per-query) values of a metric, indexed by id (for paired tests)."""
    frame = pd.read_parquet(Path(artifact) / "per_item.parquet", columns=["id", metric])
    return frame.set_index("id")[metric]


def difference_label(label_a: str, label_b: str) -> str:
    """``"B - A"``: how every table names what :func:`paired_difference` returns."""
    return f"{label_b} - {label_a}"


def replicates(run: dict) -> list[dict]:
    """A row's artifact directories per replicate seed (one entry for a single-seed row)."""
    return run.get("replicates") or [run]


def replicate_matrix(runs: list[dict], stage: str, metric: str) -> tuple[np.ndarray, ...]:
    """Per-item values ``(S, n)`` of each run's S seeds, on the first run's items in order."""
    first = read_per_item(replicates(runs[0])[0][stage], metric)
    return tuple(np.stack([read_per_item(r[stage], metric).reindex(first.index).to_numpy(
        dtype=np.float64) for r in replicates(run)]) for run in runs)


def run_cell(run: dict, stage: str, metric: str, resamples: int, seed: int) -> Cell:
    """A row's metric: one seed's stored CI, or the mean over seeds with a two-level CI.

    Several seeds: the mean over seeds of each seed's mean over test items, with the 95 %
    two-level bootstrap CI (seeds, then test images within each drawn seed).
    """
    from synreal.eval.bootstrap import two_level_bootstrap_ci

    seeds = replicates(run)
    if len(seeds) == 1:
        return read_metric(seeds[0][stage], metric)
    (values,) = replicate_matrix([run], stage, metric)
    interval = two_level_bootstrap_ci(values, n_resamples=resamples, seed=seed)
    return Cell(interval.estimate, interval.lo, interval.hi)


def seed_values(run: dict, stage: str, metric: str) -> list[float]:
    """Each replicate seed's own value of the metric (its ``metrics.json`` estimate)."""
    return [read_metric(r[stage], metric).estimate for r in replicates(run)]


def seed_count(runs: dict[str, dict]) -> str:
    """How many seeds the rows average, in words for a caption ("2 seeds", "1-3 seeds")."""
    counts = sorted({len(replicates(run)) for run in runs.values()})
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"{span} seed{'s' if counts[-1] > 1 else ''}"


def paired_difference(run_a: dict, run_b: dict, stage: str, metric: str, resamples: int,
                      seed: int) -> Cell:
    """``mean(b) - mean(a)`` on the same test items, with a paired bootstrap 95 % CI.

    Positive: run B scores higher. Tables label it with :func:`difference_label`. With
    replicate seeds, seed ``i`` of B is paired with seed ``i`` of A, and the CI is the
    two-level bootstrap of those per-seed, per-item differences.
    """
    from synreal.eval.bootstrap import paired_bootstrap_diff, paired_two_level_bootstrap_diff

    seeds_a, seeds_b = replicates(run_a), replicates(run_b)
    if len(seeds_a) != len(seeds_b):
        raise DataError(f"a paired difference pairs seeds, but the runs have {len(seeds_a)} "
                        f"and {len(seeds_b)}; give both runs the same replicates.")
    if len(seeds_a) > 1:
        a, b = replicate_matrix([run_a, run_b], stage, metric)
        if np.isnan(b).all():
            return Cell(float("nan"), float("nan"), float("nan"))
        interval = paired_two_level_bootstrap_diff(b, a, n_resamples=resamples, seed=seed)
        return Cell(interval.estimate, interval.lo, interval.hi)
    a = read_per_item(run_a[stage], metric)
    b = read_per_item(run_b[stage], metric).reindex(a.index)
    if b.isna().all():
        return Cell(float("nan"), float("nan"), float("nan"))
    # paired_bootstrap_diff(x, y) is mean(x) - mean(y): B first
    interval = paired_bootstrap_diff(b.to_numpy(), a.to_numpy(), n_resamples=resamples, seed=seed)
    return Cell(interval.estimate, interval.lo, interval.hi)


def differs(cell: Cell) -> str:
    """Plain words for a paired difference: whether its CI excludes zero."""
    if not np.isfinite(cell.estimate):
        return "n/a"
    return "yes" if cell.lo > 0 or cell.hi < 0 else "no (CI contains 0)"


def stored_cell(block: dict | None, key: str, where: str) -> Cell | None:
    """A set-level measure stored beside its CI, or None when it was not measured.

    ``block`` is an audit summary's ``diversity`` or ``fid`` entry:
    ``{key: estimate, "ci_low": ..., "ci_high": ...}``.
    """
    if not block or block.get(key) is None:
        return None
    if block.get("ci_low") is None or block.get("ci_high") is None:
        raise DataError(f"{where} has {key!r} without its bootstrap CI (ci_low, ci_high): an "
                        "older audit wrote it; delete that audit and rerun snakemake to "
                        "rebuild it.")
    return Cell(float(block[key]), float(block["ci_low"]), float(block["ci_high"]))


def rate_cell(values, resamples: int, seed: int) -> Cell | None:
    """The share of true values (NaN = not measured) with its bootstrap 95 % CI."""
    from synreal.eval.bootstrap import bootstrap_ci

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    interval = bootstrap_ci(x, n_resamples=resamples, seed=seed)
    return Cell(interval.estimate, interval.lo, interval.hi)


def median_cell(values, resamples: int, seed: int) -> Cell | None:
    """The median with a percentile-bootstrap 95 % CI (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return None
    result = bootstrap((x,), np.median, n_resamples=resamples, method="percentile",
                       rng=np.random.default_rng(seed))
    return Cell(float(np.median(x)), float(result.confidence_interval.low),
                float(result.confidence_interval.high))
