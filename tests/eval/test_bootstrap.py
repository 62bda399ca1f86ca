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
