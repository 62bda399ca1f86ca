import numpy as np
import pytest

from synreal.audit.fid import (
    fid,
    fid_bootstrap,
    frechet_distance,
    gaussian_stats,
    kid,
    polynomial_mmd2,
    resample_index_pairs,
    resampled_fid,
)


def reference_frechet(mu1, s1, mu2, s2):
    """Independent formulation: tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2), by eigh."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def reference_mmd2(x, y, degree=3):
    """Unbiased MMD^2 by explicit sums over pairs."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** degree

    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("d,shift,seed", [(1, 0.0, 0), (4, 0.5, 1), (16, 2.0, 2), (32, 0.1, 3)])
def test_fid_equals_an_independent_formulation(d, shift, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(300, d)) @ rng.normal(size=(d, d))
    b = rng.normal(size=(250, d)) * 1.5 + shift
    expected = reference_frechet(*gaussian_stats(a), *gaussian_stats(b))
    assert fid(a, b) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_fid_of_1d_gaussians_is_the_closed_form():
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]),
                            np.array([[9.0]])) == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_shift():
    x = np.random.default_rng(0).normal(size=(400, 8))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-6)
    values = [fid(x, x + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert values == sorted(values) and values[0] > 0
    assert values[-1] == pytest.approx(8 * 4.0, rel=1e-6)  # mean shift 2 in 8 dims


@pytest.mark.parametrize("degree", [1, 3])
def test_polynomial_mmd2_equals_explicit_pair_sums(degree):
    rng = np.random.default_rng(degree)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 0.3
    assert polynomial_mmd2(x, y, degree) == pytest.approx(reference_mmd2(x, y, degree))


def test_kid_is_near_zero_for_one_distribution_and_positive_after_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    same, _ = kid(a, b, subsets=20, subset_size=200)
    shifted, std = kid(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.05 and shifted > 10 * max(abs(same), std, 1e-3)


def _sets(n, m, d, seed, shift=0.5):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)),
            rng.normal(size=(m, d)) * 1.3 + shift)


@pytest.mark.parametrize("n,m,d", [
    (300, 250, 4),  # more distinct images than dimensions: Cholesky factor
    (30, 40, 64),  # fewer in both: Gram matrix of the two sets' draws
    (20, 400, 32),  # one of each
])
def test_resampled_fid_equals_fid_of_the_resampled_sets(n, m, d):
    a, b = _sets(n, m, d, seed=d)
    indices_a, indices_b = resample_index_pairs(n, m, 6, seed=1)
    expected = [fid(a[i], b[j]) for i, j in zip(indices_a, indices_b, strict=True)]
    np.testing.assert_allclose(resampled_fid(a, b, indices_a, indices_b), expected, rtol=1e-6)


def test_resampled_fid_of_a_singular_covariance_equals_the_eigh_formulation():
    a, b = _sets(200, 150, 6, seed=3)
    a[:, -1] = 1.0  # a constant feature: S_a is singular, Cholesky fails
    indices_a, indices_b = resample_index_pairs(200, 150, 4, seed=2)
    expected = [reference_frechet(*gaussian_stats(a[i]), *gaussian_stats(b[j]))
                for i, j in zip(indices_a, indices_b, strict=True)]
    np.testing.assert_allclose(resampled_fid(a, b, indices_a, indices_b), expected, rtol=1e-6)


def test_both_sets_are_resampled_independently():
    indices_a, indices_b = resample_index_pairs(50, 50, 3, seed=0)
    assert indices_a.shape == indices_b.shape == (3, 50)
    assert not np.array_equal(indices_a, indices_b)
    same_a, other_b = resample_index_pairs(50, 80, 3, seed=0)
    np.testing.assert_array_equal(same_a, indices_a)  # one set's draws ignore the other's size
    assert other_b.shape == (3, 80)


def test_fid_bootstrap_is_deterministic_under_its_seed():
    a, b = _sets(120, 100, 8, seed=4)
    first = fid_bootstrap(a, b, n_resamples=30, seed=3)
    assert fid_bootstrap(a, b, n_resamples=30, seed=3) == first
    assert fid_bootstrap(a, b, n_resamples=30, seed=4) != first
    assert first[0].estimate == pytest.approx(fid(a, b))


def test_fid_ci_contains_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(5)
    widths = []
    for n in (200, 1600):
        a, b = rng.normal(size=(n, 8)), rng.normal(size=(n, 8)) + 0.5
        ci, bias = fid_bootstrap(a, b, n_resamples=100, seed=0)
        assert ci.lo < ci.estimate < ci.hi and bias > 0
        widths.append(ci.hi - ci.lo)
    assert widths[1] < 0.5 * widths[0]  # ~1/sqrt(8) expected


def test_bias_shifted_interval_covers_the_expected_fid_at_these_set_sizes():
    """Resampled FIDs overshoot: only the bias-shifted interval has its nominal coverage."""
    rng = np.random.default_rng(6)

    def draw():
        return rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) * 1.2 + 0.3

    expected = np.mean([fid(*draw()) for _ in range(1000)])
    trials, covered, covered_unshifted = 80, 0, 0
    for t in range(trials):
        ci, bias = fid_bootstrap(*draw(), n_resamples=100, seed=t)
        covered += ci.lo <= expected <= ci.hi
        covered_unshifted += ci.lo + bias <= expected <= ci.hi + bias
    assert covered / trials >= 0.85
    assert covered_unshifted / trials < 0.6
