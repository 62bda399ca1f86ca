"""Retrieval metrics against straightforward per-query references (sklearn AP, explicit ranks)."""

import faiss
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from synreal.eval.retrieval import (
    retrieval_metrics,
    retrieval_per_query,
    summarize,
    top_k_neighbors,
)


def _reference(query, q_labels, gallery=None, g_labels=None, ks=(1, 5, 10)):
    """One query at a time: sklearn AP, explicit stable ranking for the rank metrics."""
    loo = gallery is None
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    if loo:
        gn, g_labels = qn, q_labels
    else:
        gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    rows = {name: [] for name in ["map", "map_at_r", "p_at_1"] + [f"recall_at_{k}" for k in ks]}
    for i in range(len(qn)):
        # Row by row in float64: bit-identical embeddings get bit-identical similarities.
        sims = (gn.astype(np.float64) * qn[i].astype(np.float64)).sum(axis=1)
        index = np.arange(len(gn))
        relevant = g_labels == q_labels[i]
        if loo:  # drop the query itself by index
            keep = index != i
            sims, index, relevant = sims[keep], index[keep], relevant[keep]
        if not relevant.any():
            for values in rows.values():
                values.append(np.nan)
            continue
        rows["map"].append(average_precision_score(relevant, sims))
        ranked = relevant[np.lexsort((index, -sims))]
        r = int(relevant.sum())
        precision_at = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
        rows["map_at_r"].append(float((precision_at[:r] * ranked[:r]).sum() / r))
        rows["p_at_1"].append(float(ranked[0]))
        for k in ks:
            rows[f"recall_at_{k}"].append(float(ranked[:k].any()))
    return {name: np.array(v) for name, v in rows.items()}


def _tied_embeddings(rng, n, dim=8):
    """Unit vectors with four entries of +-0.5: inner products are exact multiples of 1/4."""
    x = np.zeros((n, dim), dtype=np.float32)
    for row in x:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return x


def _assert_matches(got, ref):
    for name, values in ref.items():
        np.testing.assert_allclose(got[name], values, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_leave_one_out_matches_reference_with_ties_and_singletons(seed):
    rng = np.random.default_rng(seed)
    emb = _tied_embeddings(rng, 120)
    labels = rng.integers(0, 12, 120)
    labels[:3] = [100, 101, 102]  # classes of size 1: no relevant item under leave-one-out
    ref = _reference(emb, labels)
    got = retrieval_per_query(emb, labels)
    assert len(set(np.round(emb @ emb.T, 6).ravel())) < 20  # the data really is full of ties
    _assert_matches(got, ref)
    summary = retrieval_metrics(emb, labels)
    assert summary["n_queries_no_relevant"] == 3 and summary["n_queries"] == 117
    assert summary["map"] == pytest.approx(np.nanmean(ref["map"]))


def test_gallery_mode_matches_reference_continuous_data():
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((6, 16))
    q_labels, g_labels = rng.integers(0, 6, 50), rng.integers(0, 7, 300)  # class 6: gallery only
    query = centers[q_labels] + rng.standard_normal((50, 16))
    gallery = centers[g_labels % 6] + rng.standard_normal((300, 16))
    ref = _reference(query, q_labels, gallery, g_labels, ks=(1, 3, 10))
    _assert_matches(retrieval_per_query(query, q_labels, gallery, g_labels, ks=(1, 3, 10)), ref)


def test_gallery_mode_with_ties_and_query_class_missing_from_gallery():
    rng = np.random.default_rng(4)
    query, gallery = _tied_embeddings(rng, 40), _tied_embeddings(rng, 200)
    q_labels, g_labels = rng.integers(0, 6, 40), rng.integers(0, 5, 200)  # class 5: none
    got = retrieval_per_query(query, q_labels, gallery, g_labels)
    _assert_matches(got, _reference(query, q_labels, gallery, g_labels))
    assert np.isnan(got["map"][q_labels == 5]).all()


def test_self_is_excluded_by_index_not_by_similarity():
    # 0 and 1 are identical and share a class; 2 and 3 are identical with different classes.
    emb = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0.6, 0.8, 0], [0.8, 0.6, 0]])
    labels = np.array([0, 0, 1, 2, 1, 2])
    got = retrieval_per_query(emb, labels)
    assert got["p_at_1"][0] == 1.0 and got["p_at_1"][1] == 1.0  # the duplicate is found
    assert got["p_at_1"][2] == 0.0 and got["p_at_1"][3] == 0.0  # the wrong duplicate ranks 1st
    _assert_matches(got, _reference(emb, labels))
    idx, sims = top_k_neighbors(emb, k=2)
    assert idx[0, 0] == 1 and idx[1, 0] == 0 and sims[0, 0] == pytest.approx(1.0)
    assert not (idx == np.arange(6)[:, None]).any()


def test_torch_input_and_label_dtypes():
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((30, 4)).astype(np.float32)
    labels = rng.integers(0, 3, 30)
    names = np.array(["cat", "dog", "pig"])[labels]
    a = retrieval_metrics(torch.from_numpy(emb), torch.from_numpy(labels))
    b = retrieval_metrics(emb, names)
    assert a == b


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("threads", [1, 3])
def test_pieces_tasks_and_threads_cover_all_queries(monkeypatch, symmetric, threads):
    import synreal.eval.retrieval as retrieval

    rng = np.random.default_rng(6)
    emb, labels = _tied_embeddings(rng, 70), rng.integers(0, 5, 70)
    ref = _reference(emb, labels)
    monkeypatch.setattr(retrieval, "_PIECE", 16)  # 5 row blocks, the last of 6 rows
    monkeypatch.setattr(retrieval, "_TASK_ELEMENTS", 70 * 3)  # 3 queries per task
    monkeypatch.setattr(retrieval, "_SYMMETRIC_MAX_BYTES", 1 << 30 if symmetric else 0)
    monkeypatch.setattr(retrieval, "job_threads", lambda: threads)
    _assert_matches(retrieval_per_query(emb, labels), ref)


def test_gallery_pieces_with_continuous_data(monkeypatch):
    import synreal.eval.retrieval as retrieval

    rng = np.random.default_rng(8)
    centers = rng.standard_normal((4, 24))
    q_labels, g_labels = rng.integers(0, 4, 90), rng.integers(0, 4, 230)
    query = centers[q_labels] + 2 * rng.standard_normal((90, 24))
    gallery = centers[g_labels] + 2 * rng.standard_normal((230, 24))
    ref = _reference(query, q_labels, gallery, g_labels)
    monkeypatch.setattr(retrieval, "_PIECE", 64)  # 4 column pieces, the last of 38 columns
    monkeypatch.setattr(retrieval, "_TASK_ELEMENTS", 230 * 7)
    _assert_matches(retrieval_per_query(query, q_labels, gallery, g_labels), ref)


def test_ties_at_the_top_are_broken_by_gallery_index():
    # Query 0's neighbours: items 1-4 tie at 0.8 (1 and 3 relevant), item 5 (relevant) at 0.6.
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.8, 0.6], [0.8, -0.6], [0.8, -0.6], [0.6, 0.8]])
    labels = np.array([0, 0, 1, 0, 1, 0])
    got = retrieval_per_query(emb[:1], labels[:1], emb[1:], labels[1:])
    # Ranking by (similarity, index): 1 (rel), 2, 3 (rel), 4, 5 (rel); R = 3.
    assert got["p_at_1"][0] == 1.0
    assert got["map_at_r"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)
    # sklearn AP: the tie group {1..4} enters at once with precision 2/4, then 3/5.
    assert got["map"][0] == pytest.approx((2 * 2 / 4 + 3 / 5) / 3)
    _assert_matches(got, _reference(emb[:1], labels[:1], emb[1:], labels[1:]))


def test_top_k_matches_faiss_on_tie_free_data():
    rng = np.random.default_rng(7)
    query, gallery = rng.standard_normal((40, 12)), rng.standard_normal((500, 12))
    idx, sims = top_k_neighbors(query, gallery, k=8)
    qn = (query / np.linalg.norm(query, axis=1, keepdims=True)).astype(np.float32)
    gn = (gallery / np.linalg.norm(gallery, axis=1, keepdims=True)).astype(np.float32)
    index = faiss.IndexFlatIP(12)
    index.add(gn)
    ref_sims, ref_idx = index.search(qn, 8)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)


def test_top_k_breaks_ties_by_index():
    emb = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]])
    idx, _ = top_k_neighbors(emb[:1], emb, k=3)
    np.testing.assert_array_equal(idx, [[0, 1, 2]])


def test_summary_of_no_valid_query_is_nan():
    summary = summarize(retrieval_per_query(np.eye(3), [0, 1, 2]))
    assert np.isnan(summary["map"]) and summary["n_queries_no_relevant"] == 3


@pytest.mark.parametrize("symmetric", [True, False])
def test_duplicate_images_tie_with_continuous_data(monkeypatch, symmetric):
    import synreal.eval.retrieval as retrieval

    # sgemm may round a dot product differently at different positions of a piece; a
    # duplicated embedding must still tie with its original, as in the per-query reference.
    rng = np.random.default_rng(9)
    centers = rng.standard_normal((5, 48))
    labels = rng.integers(0, 5, 150)
    emb = (centers[labels] + 1.5 * rng.standard_normal((150, 48))).astype(np.float32)
    emb[100:], labels[100:120] = emb[:50], labels[:20]  # 50 duplicates, 30 of another class
    monkeypatch.setattr(retrieval, "_PIECE", 32)
    monkeypatch.setattr(retrieval, "_SYMMETRIC_MAX_BYTES", 1 << 30 if symmetric else 0)
    _assert_matches(retrieval_per_query(emb, labels), _reference(emb, labels))
