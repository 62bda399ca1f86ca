import numpy as np
import pytest
from scipy.spatial.distance import pdist

from synreal.audit.diversity import (
    diversity_bootstrap,
    mean_pairwise_cosine_distance,
    per_class_diversity,
    resampled_diversity,
)


@pytest.mark.parametrize("n,d,seed", [(2, 3, 0), (17, 5, 1), (200, 64, 2)])
def test_closed_form_equals_brute_force_pairwise_mean(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)) + 0.5
    assert mean_pairwise_cosine_distance(x) == pytest.approx(pdist(x, "cosine").mean(), abs=1e-6)


def test_identical_vectors_have_zero_diversity_and_one_row_is_nan():
    assert mean_pairwise_cosine_distance(np.ones((5, 3))) == pytest.approx(0.0, abs=1e-7)
    assert np.isnan(mean_pairwise_cosine_distance(np.ones((1, 3))))


def test_per_class_uses_each_class_alone():
    x = np.array([[1.0, 0], [1, 0], [1, 0], [0, 1]])
    out = per_class_diversity(x, np.array([0, 0, 1, 1]))
    assert out["0"] == pytest.approx(0.0, abs=1e-7) and out["1"] == pytest.approx(1.0)


def _resamples(n, n_resamples, seed):
    """The draws every bootstrap in the package makes for ``n`` items under ``seed``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _loop(x, indices):
    """Brute force: pdist of each resampled set (a repeated image is a pair at distance 0)."""
    return np.array([pdist(x[row], "cosine").mean() for row in indices])


@pytest.mark.parametrize("n,d,seed", [(2, 3, 0), (9, 4, 1), (40, 16, 2)])
def test_vectorised_resamples_equal_a_loop_over_resampled_sets(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)) + 0.3
    indices = _resamples(n, 50, seed)
    np.testing.assert_allclose(resampled_diversity(x, indices), _loop(x, indices), atol=1e-6)


@pytest.mark.parametrize("chunk_elements", [None, 100])  # 100: a few resamples per block
def test_bootstrap_ci_is_the_percentile_interval_of_the_seeded_resamples(chunk_elements,
                                                                         monkeypatch):
    import synreal.eval.bootstrap as bootstrap

    if chunk_elements:
        monkeypatch.setattr(bootstrap, "_CHUNK_ELEMENTS", chunk_elements)
    x = np.random.default_rng(5).normal(size=(30, 6)) + 0.5
    expected = np.quantile(_loop(x, _resamples(30, 200, seed=7)), [0.025, 0.975])
    ci = diversity_bootstrap(x, n_resamples=200, seed=7)
    assert ci.estimate == pytest.approx(mean_pairwise_cosine_distance(x))
    assert [ci.lo, ci.hi] == pytest.approx(expected, abs=1e-6)
    assert diversity_bootstrap(x, n_resamples=200, seed=8) != ci


def _clustered(n, seed):
    """Embeddings around 4 directions: diversity well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 16))
    return centres[rng.integers(0, 4, n)] + 0.7 * rng.normal(size=(n, 16))


def test_ci_contains_the_estimate_and_narrows_with_more_images():
    small = diversity_bootstrap(_clustered(100, 0), n_resamples=1000)
    large = diversity_bootstrap(_clustered(1600, 0), n_resamples=1000)
    for ci in (small, large):
        assert ci.lo < ci.estimate < ci.hi
    assert large.hi - large.lo < 0.5 * (small.hi - small.lo)  # ~1/sqrt(16) expected


def test_ci_covers_the_population_diversity():
    population = mean_pairwise_cosine_distance(_clustered(200_000, 0))  # same centres
    rng = np.random.default_rng(1)
    centres = np.random.default_rng(0).normal(size=(4, 16))
    trials, covered = 100, 0
    for t in range(trials):
        x = centres[rng.integers(0, 4, 150)] + 0.7 * rng.normal(size=(150, 16))
        ci = diversity_bootstrap(x, n_resamples=500, seed=t)
        covered += ci.lo <= population <= ci.hi
    assert 0.85 <= covered / trials <= 1.0


def test_fewer_than_two_images_have_no_ci():
    ci = diversity_bootstrap(np.ones((1, 3)), n_resamples=10)
    assert np.isnan([ci.estimate, ci.lo, ci.hi]).all()
