"""Linear probe: separable -> ~100 %, random labels -> chance, test rows never used to select."""

import numpy as np
import pytest
import torch

import synreal.eval.probe as probe
from synreal.errors import DataError
from synreal.eval.probe import ProbeConfig, linear_probe, stratified_split

FAST = ProbeConfig(lrs=(1e-2, 1e-1), weight_decays=(0.0, 1e-3), steps=100)


def _clusters(rng, n, num_classes=5, dim=16, spread=0.3):
    centers = 3 * rng.standard_normal((num_classes, dim))
    labels = rng.integers(0, num_classes, n)
    return (centers[labels] + spread * rng.standard_normal((n, dim))).astype(np.float32), labels


def test_separable_features_reach_full_accuracy():
    rng = np.random.default_rng(0)
    x, y = _clusters(rng, 400)
    result = linear_probe(x[:250], y[:250], x[250:], y[250:], FAST)
    assert result.top1 >= 0.99 and result.top5 == 1.0
    assert result.confusion.sum() == 150 and np.trace(result.confusion) == result.correct.sum()
    assert np.nanmin(result.per_class_accuracy) >= 0.95
    np.testing.assert_array_equal(result.predictions[result.correct], y[250:][result.correct])


def test_random_labels_give_chance_accuracy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((800, 16)).astype(np.float32)
    y = rng.integers(0, 4, 800)
    result = linear_probe(x[:400], y[:400], x[400:], y[400:], FAST)
    assert 0.15 <= result.top1 <= 0.35


def test_selection_and_fitting_never_see_test_rows(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = _clusters(rng, 300)
    x_test = x[200:].copy()
    x_test[:, 0] = 12345.0  # a marker no trainval row carries
    seen = []
    real_fit = probe.fit

    def spy(rows, *args, **kwargs):
        seen.append(rows)
        return real_fit(rows, *args, **kwargs)

    monkeypatch.setattr(probe, "fit", spy)
    a = linear_probe(x[:200], y[:200], x_test, y[200:], FAST)
    assert len(seen) == 5  # 4 grid points + the final fit
    assert all((rows[:, 0] != 12345.0).all() for rows in seen)
    n_fit = len(stratified_split(y[:200], 0.2, seed=0)[0])
    assert 155 <= n_fit <= 165  # about 20 % held out
    assert [len(rows) for rows in seen] == [n_fit] * 4 + [200]  # then all of trainval

    # Changing the test set changes nothing in the selection.
    b = linear_probe(x[:200], y[:200], -x_test, rng.permutation(y[200:]), FAST)
    assert a.grid == b.grid and (a.best_lr, a.best_weight_decay) == (b.best_lr, b.best_weight_decay)


def test_deterministic_under_seed_and_torch_inputs():
    rng = np.random.default_rng(3)
    x, y = _clusters(rng, 200, spread=3.0)
    a = linear_probe(x[:150], y[:150], x[150:], y[150:], FAST)
    b = linear_probe(torch.from_numpy(x[:150]), torch.from_numpy(y[:150]),
                     x[150:], y[150:], FAST)
    assert a.summary() == b.summary()
    np.testing.assert_array_equal(a.correct, b.correct)


def test_stratified_split_is_seeded_and_keeps_singletons():
    codes = np.array([0] * 10 + [1] * 5 + [2])
    fit_rows, val_rows = stratified_split(codes, 0.2, seed=0)
    assert np.bincount(codes[val_rows], minlength=3).tolist() == [2, 1, 0]
    assert sorted(np.r_[fit_rows, val_rows]) == list(range(16))
    assert (val_rows == stratified_split(codes, 0.2, seed=0)[1]).all()
    with pytest.raises(DataError, match="too small"):
        stratified_split(np.array([0, 1, 2]), 0.2, seed=0)


def test_leaked_ids_fail_the_run():
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(DataError, match="test image"):
        linear_probe(x, [0, 1, 0, 1], x, [0, 1, 0, 1], FAST, ["a", "b", "c", "d"], ["d"])
