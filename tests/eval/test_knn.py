"""Weighted k-NN (DINO eval_knn) against a brute-force loop."""

import numpy as np
import pytest
import torch

from synreal.eval.knn import knn_accuracy, knn_correct, knn_predict


def _brute_force(train, y_train, test, k, temperature):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    predictions = []
    for x in test:
        sims = train @ x
        votes = {}
        for j in np.argsort(-sims)[:k]:
            votes[y_train[j]] = votes.get(y_train[j], 0.0) + np.exp(sims[j] / temperature)
        predictions.append(max(sorted(votes), key=lambda c: votes[c]))
    return np.array(predictions)


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_brute_force_for_several_k(temperature):
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5, 8))
    y_train, y_test = rng.integers(0, 5, 300), rng.integers(0, 5, 90)
    train = centers[y_train] + 1.5 * rng.standard_normal((300, 8))
    test = centers[y_test] + 1.5 * rng.standard_normal((90, 8))
    ks = (1, 10, 20, 100, 200)
    predicted = knn_predict(train, y_train, test, ks, temperature, chunk_size=32)
    for k in ks:
        np.testing.assert_array_equal(
            predicted[k], _brute_force(train, y_train, test, k, temperature), err_msg=f"k={k}"
        )
    correct = knn_correct(train, y_train, test, y_test, ks, temperature)
    for k in ks:
        assert knn_accuracy(train, y_train, test, y_test, k, temperature) == correct[k].mean()
    assert 0.4 < correct[20].mean() < 1.0


def test_weights_matter():
    # Two close neighbours of class 0 outvote three far ones of class 1 only with weighting.
    train = np.array([[1.0, 0.05], [1.0, -0.05], [0.0, 1.0], [0.1, 1.0], [-0.1, 1.0]])
    y_train = np.array([0, 0, 1, 1, 1])
    test = np.array([[1.0, 0.0]])
    assert knn_predict(train, y_train, test, (5,), 0.07)[5][0] == 0
    assert knn_predict(train, y_train, test, (5,), 100.0)[5][0] == 1


def test_torch_inputs_string_labels_and_k_above_train_size():
    rng = np.random.default_rng(1)
    train, test = rng.standard_normal((12, 4)), rng.standard_normal((6, 4))
    labels = np.array(["a", "b", "c"])
    y_train, y_test = labels[rng.integers(0, 3, 12)], labels[rng.integers(0, 3, 6)]
    a = knn_accuracy(torch.from_numpy(train), y_train, torch.from_numpy(test), y_test, k=200)
    b = knn_accuracy(train, y_train, test, y_test, k=12)
    assert a == b
