"""The two-level (seeds, then test items) bootstrap against independent computations."""

import numpy as np
import pytest

from synreal.eval.bootstrap import (
    bootstrap_ci,
    paired_two_level_bootstrap_diff,
    two_level_bootstrap_ci,
    two_level_means,
)


def _brute_force_means(values: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """The same resampling written as the plain nested loop, with its own random draws."""
    n_seeds, n = values.shape
    out = np.empty(n_resamples)
    for b in range(n_resamples):
        drawn = []
        for _ in range(n_seeds):
            row = values[rng.integers(n_seeds)]
            drawn.append(row[rng.integers(0, n, size=n)].mean())
        out[b] = np.mean(drawn)
    return out


def _analytic_variance(values: np.ndarray) -> float:
    """Var of the two-stage bootstrap mean: (between + within / n) / S, exactly."""
    n_seeds, n = values.shape
    means = values.mean(axis=1)
    between = np.mean((means - means.mean()) ** 2)
    within = np.mean(values.var(axis=1)) / n
    return (between + within) / n_seeds


@pytest.mark.parametrize(("n_seeds", "n", "spread"), [(2, 50, 0.0), (3, 40, 0.1), (5, 30, 0.3)])
def test_resamples_have_the_analytic_variance_and_match_a_brute_force_loop(n_seeds, n, spread):
    rng = np.random.default_rng(n_seeds)
    values = rng.normal(size=(n_seeds, 1)) * spread + rng.random((n_seeds, n))
    fast = two_level_means(values, 20000, seed=1)
    slow = _brute_force_means(values, 4000, np.random.default_rng(2))
    expected = _analytic_variance(values)
    # Monte Carlo error of a variance from B draws is about sqrt(2 / B): 1 % and 2.2 %
    assert fast.var() == pytest.approx(expected, rel=0.05)
    assert slow.var() == pytest.approx(expected, rel=0.1)
    assert fast.mean() == pytest.approx(values.mean(), abs=4 * np.sqrt(expected / 20000))
    for q in (0.025, 0.5, 0.975):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(slow, q),
                                                     abs=0.15 * np.sqrt(expected) + 1e-12)


def test_one_seed_is_the_one_level_bootstrap():
    values = np.random.default_rng(0).random(200)
    two = two_level_bootstrap_ci(values[None, :], n_resamples=4000, seed=3)
    one = bootstrap_ci(values, n_resamples=4000, seed=4)
    assert two.estimate == one.estimate
    assert two.lo == pytest.approx(one.lo, abs=0.006)
    assert two.hi == pytest.approx(one.hi, abs=0.006)


def test_the_estimate_is_the_mean_over_seeds_and_nan_items_are_dropped_from_every_seed():
    values = np.array([[1.0, 0.0, np.nan, 1.0], [0.0, 0.0, 1.0, 1.0]])
    ci = two_level_bootstrap_ci(values, n_resamples=200)
    assert ci.estimate == pytest.approx(np.mean([2 / 3, 1 / 3]))
    assert ci.lo <= ci.estimate <= ci.hi


def _simulate(n_seeds, n, seed_sd, rng):
    """Per-item 0/1 outcomes of n_seeds training seeds around a true accuracy of 0.6."""
    p = np.clip(0.6 + rng.normal(0, seed_sd, size=(n_seeds, 1)), 0.01, 0.99)
    return (rng.random((n_seeds, n)) < p).astype(float)


def test_the_ci_widens_with_seed_variance_and_covers_the_truth():
    rng = np.random.default_rng(0)
    widths, covered, covered_one_level = {}, {}, {}
    for seed_sd in (0.0, 0.05, 0.1):
        w, c, c1 = [], [], []
        for trial in range(150):
            values = _simulate(8, 100, seed_sd, rng)
            ci = two_level_bootstrap_ci(values, n_resamples=400, seed=trial)
            one = bootstrap_ci(values.ravel(), n_resamples=400, seed=trial)
            w.append(ci.hi - ci.lo)
            c.append(ci.lo <= 0.6 <= ci.hi)
            c1.append(one.lo <= 0.6 <= one.hi)
        widths[seed_sd], covered[seed_sd] = np.mean(w), np.mean(c)
        covered_one_level[seed_sd] = np.mean(c1)
    assert widths[0.0] < widths[0.05] < widths[0.1]
    # the two-level CI keeps its coverage as the seeds spread (8 seeds: 7/8 of the seed
    # variance seen), the item-only CI does not
    assert all(0.85 <= c <= 1.0 for c in covered.values()), covered
    assert covered_one_level[0.1] < 0.75, covered_one_level


def test_paired_difference_pairs_seeds_and_items():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=(3, 1)) + rng.normal(size=(3, 60))  # seed and item effects
    b = shared
    a = shared + 0.5 + 0.01 * rng.normal(size=(3, 60))  # A = B + 0.5, nearly exactly
    diff = paired_two_level_bootstrap_diff(a, b, n_resamples=2000, seed=0)
    assert diff.estimate == pytest.approx(0.5, abs=0.01)
    assert diff.hi - diff.lo < 0.02  # the shared seed and item effects cancel
    unpaired_a = two_level_bootstrap_ci(a, n_resamples=2000)
    assert unpaired_a.hi - unpaired_a.lo > 10 * (diff.hi - diff.lo)
    reversed_ = paired_two_level_bootstrap_diff(b, a, n_resamples=2000, seed=0)
    assert reversed_.estimate == pytest.approx(-diff.estimate)
    assert reversed_.lo == pytest.approx(-diff.hi) and reversed_.hi == pytest.approx(-diff.lo)


def test_paired_shapes_must_match():
    with pytest.raises(ValueError, match="equal"):
        paired_two_level_bootstrap_diff(np.zeros((2, 5)), np.zeros((3, 5)))
