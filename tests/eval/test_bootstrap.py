"""Percentile bootstrap: coverage, determinism, pairing."""

import numpy as np
import pytest

from synreal.eval.bootstrap import (
    bootstrap_ci,
    bootstrap_cis,
    bootstrap_means,
    paired_bootstrap_diff,
)


def test_coverage_of_a_known_mean():
    rng = np.random.default_rng(0)
    trials, covered, widths = 300, 0, []
    for t in range(trials):
        sample = rng.random(150) < 0.7  # Bernoulli(0.7), true mean 0.7
        ci = bootstrap_ci(sample, n_resamples=1000, seed=t)
        covered += ci.lo <= 0.7 <= ci.hi
        widths.append(ci.hi - ci.lo)
    assert 0.90 <= covered / trials <= 0.985
    # 95 % normal interval half-width for p=0.7, n=150 is 1.96 * sqrt(.21/150) = 0.073
    assert np.mean(widths) == pytest.approx(2 * 0.073, rel=0.1)


def test_deterministic_under_seed_and_seed_matters():
    x = np.random.default_rng(1).random(500)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci(x, seed=3) != bootstrap_ci(x, seed=4)
    assert bootstrap_ci(x).estimate == pytest.approx(x.mean())


def test_chunked_draws_equal_one_draw(monkeypatch):
    import synreal.eval.bootstrap as bootstrap

    x = np.random.default_rng(2).random(100)
    rng = np.random.default_rng(7)
    expected = x[rng.integers(0, 100, size=(64, 100))].mean(axis=1)
    np.testing.assert_allclose(bootstrap_means(x, 64, 7), expected)
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 1000)  # 10 resamples per chunk
    np.testing.assert_allclose(bootstrap_means(x, 64, 7), expected)


def test_paired_difference_uses_the_same_items():
    rng = np.random.default_rng(3)
    hard = rng.random(400) < 0.5  # items both runs find hard
    a = (~hard | (rng.random(400) < 0.3)).astype(float)
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a == 1), 12, replace=False)
    b[flip] = 0.0  # run B loses 12 items run A gets right: diff = 0.03
    paired = paired_bootstrap_diff(a, b, seed=0)
    assert paired.estimate == pytest.approx(0.03)
    assert paired.lo > 0  # the paired CI sees the difference ...
    ci_a, ci_b = bootstrap_ci(a, seed=0), bootstrap_ci(b, seed=1)
    assert ci_a.lo < ci_b.hi  # ... that the two marginal CIs cannot separate
    np.testing.assert_allclose(paired_bootstrap_diff(a, a).as_dict()["hi"], 0.0)


def test_nan_items_are_dropped():
    x = np.array([1.0, np.nan, 0.0, 1.0])
    assert bootstrap_ci(x).estimate == pytest.approx(2 / 3)
    d = paired_bootstrap_diff([1.0, np.nan, 1.0], [0.0, 0.0, np.nan])
    assert d.estimate == 1.0 and d.lo == d.hi == 1.0
    assert set(bootstrap_cis({"a": x, "b": x})) == {"a", "b"}
    with pytest.raises(ValueError, match="no per-item values"):
        bootstrap_ci([np.nan])


def _per_metric_loop(values, n_resamples, seed):
    """The straightforward bootstrap of one metric: its own draw, all resamples at once."""
    x = values[~np.isnan(values)]
    draw = np.random.default_rng(seed).integers(0, x.size, size=(n_resamples, x.size))
    lo, hi = np.quantile(x[draw].mean(axis=1), [0.025, 0.975])
    return {"estimate": float(x.mean()), "lo": float(lo), "hi": float(hi)}


def _retrieval_like(n, rng):
    """Six per-query metrics, NaN where a query has no relevant item, plus one NaN elsewhere."""
    no_relevant = rng.random(n) < 0.05
    per_item = {"map": rng.random(n), "map_at_r": rng.random(n) ** 2}
    per_item.update({f"recall_at_{k}": (rng.random(n) < 0.5 + k / 20).astype(float)
                     for k in (1, 5, 10)})
    per_item["p_at_1"] = per_item["recall_at_1"].copy()
    for values in per_item.values():
        values[no_relevant] = np.nan
    per_item["odd_nans"] = np.where(rng.random(n) < 0.2, np.nan, rng.random(n))
    return per_item


@pytest.mark.parametrize("chunk_elements", [None, 1000])
@pytest.mark.parametrize(("n", "seed"), [(301, 0), (2000, 5)])
def test_shared_draw_equals_a_per_metric_loop(monkeypatch, chunk_elements, n, seed):
    import synreal.eval.bootstrap as bootstrap
    from synreal.stages._evaluation import with_ci

    if chunk_elements:
        monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", chunk_elements)
    per_item = _retrieval_like(n, np.random.default_rng(n))
    ours = with_ci(per_item, 200, seed)
    assert list(ours) == list(per_item)
    assert ours == {k: _per_metric_loop(v, 200, seed) for k, v in per_item.items()}


def test_one_draw_per_distinct_item_count(monkeypatch):
    import synreal.eval.bootstrap as bootstrap

    draws = []
    original = bootstrap.resample_indices

    def counting(n, n_resamples, seed):
        draws.append(n)
        return original(n, n_resamples, seed)

    monkeypatch.setattr(bootstrap, "resample_indices", counting)
    per_item = _retrieval_like(500, np.random.default_rng(0))
    bootstrap_cis(per_item, n_resamples=50)
    assert len(draws) == 2  # six metrics with the same NaN queries share one, odd_nans its own


def test_many_metrics_chunk_like_one(monkeypatch):
    import synreal.eval.bootstrap as bootstrap

    x = np.random.default_rng(4).random((3, 100))
    expected = np.stack([bootstrap_means(row, 64, 7) for row in x])
    monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", 1000)
    np.testing.assert_array_equal(bootstrap_means(x, 64, 7), expected)


def test_an_all_nan_metric_is_named():
    with pytest.raises(ValueError, match="'map'.*no per-item values"):
        bootstrap_cis({"top1": [1.0, 0.0], "map": [np.nan, np.nan]})
