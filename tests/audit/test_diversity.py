import numpy as np
import pytest
from scipy.spatial.distance import pdist

from synreal.audit.diversity import mean_pairwise_cosine_distance, per_class_diversity


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
