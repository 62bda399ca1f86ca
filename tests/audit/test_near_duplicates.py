import numpy as np

from synreal.audit.near_duplicates import nearest_in, nearest_other, pairs_within


def test_planted_duplicates_are_found_and_nothing_else():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 32)).astype(np.float32)
    planted = [(5, 200), (17, 42), (99, 250)]
    for i, j in planted:
        x[j] = x[i] * 1.3 + rng.normal(scale=0.01, size=32)
    pairs = pairs_within(x, 0.98)
    assert sorted(zip(pairs["i"], pairs["j"], strict=True)) == sorted(planted)
    sims, idx = nearest_other(x)
    assert all(idx[i] == j and idx[j] == i for i, j in planted)
    assert (sims[[i for p in planted for i in p]] > 0.98).all()


def test_pairs_match_brute_force_at_a_loose_threshold():
    x = np.random.default_rng(1).normal(size=(60, 3)).astype(np.float32)
    n = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = n @ n.T
    expected = {(i, j) for i in range(60) for j in range(i + 1, 60) if sims[i, j] > 0.9}
    pairs = pairs_within(x, 0.9)
    assert set(zip(pairs["i"], pairs["j"], strict=True)) == expected


def test_between_sets_finds_the_leaked_test_image():
    rng = np.random.default_rng(2)
    train, test = rng.normal(size=(50, 16)), rng.normal(size=(40, 16))
    train[7] = test[31]
    sims, idx = nearest_in(train, test)
    assert idx[7] == 31 and sims[7] > 0.999
    assert (np.delete(sims, 7) < 0.9).all()
