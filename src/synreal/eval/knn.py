"""Weighted k-NN classification on frozen features (DINO ``eval_knn.py`` protocol).

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (ICCV 2021), sec. 4:
features are L2-normalised; each test image takes its k most cosine-similar training images,
each neighbour votes for its label with weight ``exp(sim / T)`` (T = 0.07), and the class with
the largest summed vote wins. Reported for k in {10, 20, 100, 200}; DINO's headline uses k = 20.

Neighbour search is exact brute-force inner product with ``faiss.IndexFlatIP`` (moved to the
GPUs when faiss sees any), one search with the largest k serving every k, in chunks of test
rows to bound memory. Vote ties go to the lowest class code (``argmax``); neighbours tied at
the k-th similarity are chosen by faiss.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from synreal.eval.embeddings import ArrayLike, as_embeddings, as_labels, encode_labels, l2_normalize

DINO_KS = (10, 20, 100, 200)
DINO_TEMPERATURE = 0.07


def knn_accuracy(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    k: int = 20,
    temperature: float = DINO_TEMPERATURE,
) -> float:
    """Top-1 accuracy of the weighted k-NN classifier (DINO eval_knn), in [0, 1].

    Args:
        train_emb: ``(N, d)`` training (memory bank) features, numpy or torch.
        train_labels: ``(N,)`` their labels.
        test_emb: ``(M, d)`` test features.
        test_labels: ``(M,)`` their labels.
        k: neighbours (capped at N).
        temperature: T in the vote weight ``exp(sim / T)``.

    Example:
        >>> knn_accuracy(np.eye(2), [0, 1], np.eye(2), [0, 1], k=1)
        1.0
    """
    correct = knn_correct(train_emb, train_labels, test_emb, test_labels, (k,), temperature)
    return float(correct[k].mean())


def knn_correct(
    train_emb: ArrayLike,
    train_labels: ArrayLike,
    test_emb: ArrayLike,
    test_labels: ArrayLike,
    ks: Sequence[int] = DINO_KS,
    temperature: float = DINO_TEMPERATURE,
) -> dict[int, np.ndarray]:
    """Per-test-image correctness ``{k: (M,) bool}`` for several k at once (for bootstrap CIs)."""
    train = as_embeddings(train_emb, "train_emb")
    test = as_embeddings(test_emb, "test_emb")
    y_train = as_labels(train_labels, train.shape[0], "train_labels")
    y_test = as_labels(test_labels, test.shape[0], "test_labels")
    classes, (train_codes, test_codes) = encode_labels(y_train, y_test)
    predictions = knn_predict(train, train_codes, test, ks, temperature, len(classes))
    return {k: pred == test_codes for k, pred in predictions.items()}


def knn_predict(
    train_emb: ArrayLike,
    train_codes: np.ndarray,
    test_emb: ArrayLike,
    ks: Sequence[int] = DINO_KS,
    temperature: float = DINO_TEMPERATURE,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[int, np.ndarray]:
    """Predicted class codes ``{k: (M,) int64}``; ``train_codes`` are ints in ``[0, C)``.

    Memory per chunk: ``chunk_size * max(ks)`` neighbours and ``chunk_size * C`` votes.
    """
    train = l2_normalize(as_embeddings(train_emb, "train_emb"))
    test = l2_normalize(as_embeddings(test_emb, "test_emb"))
    codes = np.asarray(train_codes, dtype=np.int64)
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    num_classes = int(codes.max()) + 1 if num_classes is None else num_classes
    k_max = min(max(ks), train.shape[0])
    index = _flat_ip_index(train)
    out = {k: np.empty(test.shape[0], dtype=np.int64) for k in ks}
    for r0 in range(0, test.shape[0], chunk_size):
        sims, nn = index.search(test[r0 : r0 + chunk_size], k_max)  # (B, k_max), sorted
        weights = np.exp(sims.astype(np.float64) / temperature)
        rows = np.arange(nn.shape[0])[:, None] * num_classes
        flat = rows + codes[nn]  # (B, k_max) index into the (B, C) vote table
        for k in ks:
            kk = min(k, k_max)
            votes = np.bincount(flat[:, :kk].ravel(), weights[:, :kk].ravel(),
                                minlength=nn.shape[0] * num_classes)
            out[k][r0 : r0 + chunk_size] = votes.reshape(-1, num_classes).argmax(axis=1)
    return out


def _flat_ip_index(train: np.ndarray) -> faiss.Index:
    """Exact inner-product index over ``train``; on the GPUs when faiss sees any."""
    index = faiss.IndexFlatIP(train.shape[1])
    if faiss.get_num_gpus() > 0:  # pragma: no cover - needs faiss-gpu and a GPU
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(train)
    return index
