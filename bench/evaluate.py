"""Benchmark the evaluation stages against the straightforward implementations.

1. Retrieval metrics (leave-one-out, 4k x 4k = Oxford-IIIT Pet test size, and 20k x 20k) on
   random clustered embeddings (37 classes, d = 384 like ViT-S) against a per-query loop with
   sklearn's ``average_precision_score`` and an explicit stable ranking. The loop runs on a
   random subsample of queries; its time is extrapolated linearly to all queries (each query
   costs the same), and its values must equal ours on that subsample.
2. Linear probe: :func:`synreal.eval.probe.linear_probe` (12-point lr/wd grid + refit) against
   sklearn ``LogisticRegression`` (lbfgs, default C, one fit) on the same standardised features.

3. Feature extraction (:func:`synreal.eval.extract.extract_features`: batched, DataLoader,
   bf16 autocast on GPU) against a per-image fp32 loop over the same files, in images/s.
   CPU default: the demo's tiny ViT at 32 px; ``--full``: ViT-S/16 at 224 px (GPU goal:
   >= 10,000 images/s in bf16).

Usage: ``python bench/evaluate.py [--quick] [--full]`` (quick: 4k retrieval only, smaller
probe, fewer images).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler

from synreal.eval.probe import linear_probe
from synreal.eval.retrieval import retrieval_per_query

DIM, CLASSES = 384, 37


def clustered(n: int, seed: int, spread: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    centers = rng.standard_normal((CLASSES, DIM))
    x = centers[labels] + spread * rng.standard_normal((n, DIM))
    return x.astype(np.float32), labels


def reference_query(normed: np.ndarray, labels: np.ndarray, i: int) -> dict[str, float]:
    sims = normed @ normed[i]
    keep = np.arange(len(normed)) != i
    sims, relevant = sims[keep], labels[keep] == labels[i]
    ranked = relevant[np.argsort(-sims, kind="stable")]
    r = int(relevant.sum())
    precision_at = np.cumsum(ranked[:r]) / np.arange(1, r + 1)
    return {
        "map": average_precision_score(relevant, sims),
        "map_at_r": float((precision_at * ranked[:r]).sum() / r),
        "p_at_1": float(ranked[0]),
        "recall_at_1": float(ranked[:1].any()),
        "recall_at_5": float(ranked[:5].any()),
        "recall_at_10": float(ranked[:10].any()),
    }


def bench_retrieval(n: int, sample: int) -> None:
    x, y = clustered(n, seed=n)
    t0 = time.perf_counter()
    ours = retrieval_per_query(x, y)
    t_ours = time.perf_counter() - t0

    normed = x / np.linalg.norm(x, axis=1, keepdims=True)
    picked = np.random.default_rng(0).choice(n, sample, replace=False)
    t0 = time.perf_counter()
    ref = [reference_query(normed, y, int(i)) for i in picked]
    t_ref = (time.perf_counter() - t0) * n / sample
    for key in ref[0]:
        # float32 sgemm (ours) vs sgemv (loop) round differently: near-equal items may swap.
        np.testing.assert_allclose(ours[key][picked], [r[key] for r in ref], rtol=1e-4,
                                   atol=1e-4, err_msg=key)
    print(f"retrieval {n} x {n}: ours {t_ours:.2f} s | per-query sklearn loop {t_ref:.1f} s "
          f"(timed on {sample} queries, extrapolated) | speed-up {t_ref / t_ours:.0f}x | "
          f"mAP {np.nanmean(ours['map']):.4f}, mAP@R {np.nanmean(ours['map_at_r']):.4f}, "
          f"P@1 {np.nanmean(ours['p_at_1']):.4f}; values equal on the sample")


def bench_probe(n_train: int, n_test: int) -> None:
    x, y = clustered(n_train + n_test, seed=1, spread=6.0)
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    t0 = time.perf_counter()
    result = linear_probe(x_tr, y_tr, x_te, y_te)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(x_tr)
    clf = LogisticRegression(max_iter=1000).fit(scaler.transform(x_tr), y_tr)
    acc_sk = float((clf.predict(scaler.transform(x_te)) == y_te).mean())
    t_sk = time.perf_counter() - t0
    print(f"probe {n_train} train / {n_test} test, d={DIM}, C={CLASSES}: ours top-1 "
          f"{result.top1:.4f} in {t_ours:.1f} s (12-point grid + refit, best lr "
          f"{result.best_lr:g}, wd {result.best_weight_decay:g}) | sklearn LogisticRegression "
          f"top-1 {acc_sk:.4f} in {t_sk:.1f} s (one fit, C=1) | time ratio "
          f"{t_ours / t_sk:.1f}x, accuracy diff {result.top1 - acc_sk:+.4f}")


def bench_features(n: int, full: bool) -> None:
    import tempfile
    from pathlib import Path

    import torch
    from PIL import Image

    from synreal.dino.backbones import create_backbone
    from synreal.eval.extract import ImageFiles, Preprocess, embed_batch, extract_features

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch, size = ("vit_small_patch16_224", 224) if full else ("vit_tiny_demo", 32)
    model = create_backbone(arch, size).eval().to(device)
    preprocess = Preprocess(int(size * 256 / 224), size, (0.485, 0.456, 0.406),
                            (0.229, 0.224, 0.225))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(n):
            path = Path(folder) / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (size + 8, size + 8, 3), dtype=np.uint8)
                            ).save(path)
            paths.append(str(path))
        ours, rate = extract_features(model, paths, preprocess, device=device,
                                      num_workers=0 if device == "cpu" else 8)
        files = ImageFiles(paths, preprocess)
        start = time.perf_counter()
        with torch.no_grad():
            loop = np.concatenate([embed_batch(model, files[i][None].to(device), "cls")
                                   .float().cpu().numpy() for i in range(n)])
        loop_rate = n / (time.perf_counter() - start)
    tolerance = 5e-2 if device == "cuda" else 1e-4  # bf16 on GPU
    assert np.allclose(ours, loop, atol=tolerance), "batched features differ from the loop"
    print(f"features {arch} on {device}: {rate:,.0f} images/s vs per-image fp32 loop "
          f"{loop_rate:,.0f} images/s -> {rate / loop_rate:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4k retrieval and a small probe")
    parser.add_argument("--full", action="store_true", help="features of ViT-S/16 at 224 px")
    args = parser.parse_args()
    bench_retrieval(4000, sample=200)
    if not args.quick:
        bench_retrieval(20000, sample=100)
    bench_probe(*((1000, 1000) if args.quick else (3680, 3669)))
    bench_features(256 if args.quick else 2048, args.full)


if __name__ == "__main__":
    main()
