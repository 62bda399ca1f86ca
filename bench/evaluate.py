"""Benchmark the evaluation stages against the straightforward implementations.

1. Retrieval metrics (leave-one-out, 4k x 4k = Oxford-IIIT Pet test size, and 20k x 20k) on
   random clustered embeddings (37 classes, d = 384 like ViT-S) against a per-query loop with
   sklearn's ``average_precision_score`` and an explicit stable ranking. The loop runs on a
   random subsample of queries; its time is extrapolated linearly to all queries (each query
   costs the same), and its values must equal ours on that subsample. Both sides are timed
   ``--repeat`` times and the fastest pass counts (as ``timeit`` does): the CPUs here are
   shared, and a pass that another job slowed says nothing about either implementation.
   The loop gets one BLAS thread: its 30 MB sgemv per query is memory-bound, and with two
   BLAS threads on the shared 2-core CPU the loop measured 1.7x slower (more under load),
   which would flatter our ratio. The retrieval stage's bootstrap CIs (every per-query
   metric, 1000 resamples, one shared draw) are timed too, to compare with the metrics' own
   time and with drawing once per metric.
2. Linear probe: :func:`synreal.eval.probe.linear_probe` (12-point lr/wd grid + refit) against
   sklearn ``LogisticRegression`` (lbfgs, default C, one fit) on the same standardised features.

3. Feature extraction (:func:`synreal.eval.extract.extract_features`: batched, DataLoader,
   bf16 autocast on GPU) on photo-like 500x375 JPEGs (Oxford-IIIT Pet's usual size), in
   images/s, with both decode paths: ``cpu`` (PIL in DataLoader workers) and ``device``
   (workers read bytes; batches decoded on the model's device, nvjpeg on a GPU), against a
   per-image fp32 loop over the same files. At ViT-S/16 bf16 speeds PIL decoding caps the
   ``cpu`` path at what the workers decode; the device path lifts that cap. On a CPU the
   device path decodes in the main process, so it is no faster there. CPU default: the
   demo's tiny ViT at 32 px; ``--full``: ViT-S/16 at 224 px (GPU goal: >= 10,000 images/s
   in bf16).

4. DINO's linear probe on images (:func:`synreal.eval.dino_probe.dino_linear_probe_images`,
   the full study's ``train_on: images``): training images/s through the loader (decode,
   RandomResizedCrop, flip), the frozen backbone and 7 heads, with the loader's workers fed
   128-image chunks joined into 1024-image steps, against the same run with whole steps as
   the loader's batches (at most as many busy workers as an epoch has steps); and the study's
   projected GPU-hours at the faster rate (43 checkpoints x 100 epochs x 1.8 x 3,680 images).

Usage: ``python bench/evaluate.py [--quick] [--full] [--only retrieval] [--repeat 3]``
(quick: 4k retrieval only, smaller probe, fewer images).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from synreal.eval.bootstrap import bootstrap_ci, bootstrap_cis
from synreal.eval.probe import linear_probe
from synreal.eval.retrieval import retrieval_per_query

DIM, CLASSES = 384, 37
T = TypeVar("T")


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


RETRIEVAL_GOAL = 50  # speed-up over the per-query loop: the project's goal


def best_of(repeat: int, run: Callable[[], T]) -> tuple[T, float]:
    """The result of ``run()`` and its fastest wall time over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return result, best


def bench_retrieval(n: int, sample: int, repeat: int) -> None:
    x, y = clustered(n, seed=n)
    ours, t_ours = best_of(repeat, lambda: retrieval_per_query(x, y))

    normed = x / np.linalg.norm(x, axis=1, keepdims=True)
    picked = np.random.default_rng(0).choice(n, sample, replace=False)
    with threadpool_limits(1, user_api="blas"):  # see the module docstring
        ref, t_sample = best_of(repeat, lambda: [reference_query(normed, y, int(i))
                                                 for i in picked])
    t_ref = t_sample * n / sample
    diffs = {}
    for key in ref[0]:
        expected = np.array([r[key] for r in ref])
        # float32 sgemm (ours) vs sgemv (loop) round differently: near-equal items may swap.
        np.testing.assert_allclose(ours[key][picked], expected, rtol=1e-4, atol=1e-4,
                                   err_msg=key)
        diffs[key] = float(np.abs(ours[key][picked] - expected).max())

    per_item = {k: v for k, v in ours.items() if k != "n_relevant"}
    cis, t_ci = best_of(repeat, lambda: bootstrap_cis(per_item, n_resamples=1000))
    each, t_each = best_of(repeat, lambda: {k: bootstrap_ci(v, n_resamples=1000)
                                            for k, v in per_item.items()})
    assert cis == each, "shared-draw CIs differ from per-metric CIs"
    speedup = t_ref / t_ours
    verdict = "met" if speedup >= RETRIEVAL_GOAL else "NOT met"
    print(f"retrieval {n} x {n} (leave-one-out): ours {t_ours:.2f} s = {n / t_ours:,.0f} "
          f"queries/s | per-query sklearn loop {t_ref:.1f} s = {n / t_ref:,.0f} queries/s "
          f"(timed on {sample} queries, extrapolated) | speed-up {speedup:.0f}x "
          f"(goal >= {RETRIEVAL_GOAL}x: {verdict})")
    print(f"  values equal to the loop on the {sample} sampled queries (max |diff|: "
          + ", ".join(f"{k} {d:.1e}" for k, d in diffs.items())
          + f") | mAP {np.nanmean(ours['map']):.4f}, mAP@R {np.nanmean(ours['map_at_r']):.4f}, "
          f"P@1 {np.nanmean(ours['p_at_1']):.4f} | bootstrap CIs of the {len(per_item)} "
          f"per-query metrics (1000 resamples, one shared draw as the retrieval stage): "
          f"{t_ci:.2f} s vs {t_each:.2f} s drawing per metric (equal intervals)")


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


def pet_like_jpegs(folder: str, n: int, seed: int = 0) -> list[str]:
    """``n`` photo-like JPEGs of Oxford-IIIT Pet's usual size (500x375, a quarter portrait).

    Smooth colour fields with mild noise at quality 90 (about 50 KB each): they decode like
    photographs, unlike uniform noise (huge files) or flat colour (trivially small ones).
    """
    from pathlib import Path

    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        height, width = (500, 375) if i % 4 == 3 else (375, 500)
        coarse = rng.integers(0, 256, (height // 16 + 2, width // 16 + 2, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC),
                            np.int16)
        noisy = np.clip(smooth + rng.integers(-8, 9, smooth.shape), 0, 255).astype(np.uint8)
        path = Path(folder) / f"{i}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    return paths


FEATURES_GOAL = 10_000  # images/s of ViT-S/16 in bf16 on one H100: the project's goal


def bench_features(n: int, full: bool, repeat: int) -> None:
    import os
    import tempfile

    import torch

    from synreal.dino.backbones import create_backbone
    from synreal.eval.extract import ImageFiles, Preprocess, embed_batch, extract_features

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch, size = ("vit_small_patch16_224", 224) if full else ("vit_tiny_demo", 32)
    model = create_backbone(arch, size).eval().to(device)
    preprocess = Preprocess(int(size * 256 / 224), size, (0.485, 0.456, 0.406),
                            (0.229, 0.224, 0.225))
    workers = 0 if device == "cpu" else min(8, os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as folder:
        paths = pet_like_jpegs(folder, n)
        kilobytes = np.mean([os.path.getsize(p) for p in paths]) / 1024
        features, rates = {}, {}
        for decode in ("cpu", "device"):  # fastest of `repeat` passes (the first warms up)
            runs = [extract_features(model, paths, preprocess, device=device,
                                     num_workers=workers, decode=decode)
                    for _ in range(repeat)]
            features[decode], rates[decode] = runs[0][0], max(rate for _, rate in runs)
        files = ImageFiles(paths, preprocess)
        start = time.perf_counter()
        with torch.no_grad():
            loop = np.concatenate([embed_batch(model, files[i][None].to(device), "cls")
                                   .float().cpu().numpy() for i in range(n)])
        loop_rate = n / (time.perf_counter() - start)
    tolerance = 5e-2 if device == "cuda" else 1e-4  # bf16 on GPU
    for decode, values in features.items():
        assert np.allclose(values, loop, atol=tolerance), f"decode={decode} differs from loop"
    diff = float(np.abs(features["device"] - features["cpu"]).max())
    print(f"features {arch} on {device}, {n} JPEGs 500x375 ({kilobytes:.0f} KB), "
          f"{workers} workers: decode=cpu (PIL) {rates['cpu']:,.0f} images/s | "
          f"decode=device (decode_jpeg batches on {device}) "
          f"{rates['device']:,.0f} images/s -> {rates['device'] / rates['cpu']:.2f}x | "
          f"per-image fp32 loop {loop_rate:,.0f} images/s (batched PIL path "
          f"{rates['cpu'] / loop_rate:.1f}x, device path {rates['device'] / loop_rate:.1f}x)")
    verdict = ""
    if full and device == "cuda":
        met = "met" if max(rates.values()) >= FEATURES_GOAL else "NOT met"
        verdict = f" | goal >= {FEATURES_GOAL:,} images/s: {met}"
    print(f"  max |feature diff| device vs cpu decode: {diff:.1e} (equal to the loop within "
          f"{tolerance:g}){verdict}")


#: The full study's image-probe passes: 43 checkpoints x 100 epochs x 1.8 x 3,680 Pet images.
STUDY_PROBE_PASSES = 43 * 100 * 1.8 * 3680


def bench_probe_images(n: int, full: bool, epochs: int) -> None:
    import os
    import tempfile

    import torch

    from synreal.dino.backbones import create_backbone
    from synreal.eval import dino_probe
    from synreal.eval.extract import ImageFiles, embed_batch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    arch, size = ("vit_small_patch16_224", 224) if full else ("vit_tiny_demo", 32)
    model = create_backbone(arch, size).eval().to(device)
    workers = min(8, os.cpu_count() or 1)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

    def embed(batch):
        with torch.no_grad(), autocast:
            return embed_batch(model, batch, "cls")

    config = dino_probe.DinoLinearConfig(epochs=epochs, train_on="images")
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        paths = pet_like_jpegs(folder, n)
        images = ImageFiles(paths, transform=dino_probe.dino_train_transform(size))
        codes, rows = np.arange(n) % CLASSES, np.arange(n)
        for name, chunk in (("whole steps", config.batch_size), ("chunks", dino_probe.CHUNK)):
            saved, dino_probe.CHUNK = dino_probe.CHUNK, chunk
            try:
                start = time.perf_counter()
                dino_probe._fit_image_heads(embed, images, rows, codes, CLASSES,
                                            config.base_lrs, config, workers, device)
                rates[name] = n * epochs / (time.perf_counter() - start)
            finally:
                dino_probe.CHUNK = saved
    hours = STUDY_PROBE_PASSES / max(rates.values()) / 3600
    print(f"probe_images {arch} on {device}, {n} JPEGs 500x375, {epochs} epochs, {workers} "
          f"workers, 7 heads: loader batches of whole {config.batch_size}-image steps "
          f"{rates['whole steps']:,.0f} images/s | {dino_probe.CHUNK}-image chunks joined "
          f"into steps {rates['chunks']:,.0f} images/s -> "
          f"{rates['chunks'] / rates['whole steps']:.2f}x | the study's image probes at "
          f"that rate: {hours:,.1f} h{' (a CPU figure)' if device == 'cpu' else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4k retrieval and a small probe")
    parser.add_argument("--full", action="store_true", help="features of ViT-S/16 at 224 px")
    parser.add_argument("--only", choices=["retrieval", "probe", "features", "probe_images"],
                        action="append",
                        help="run only these benchmarks (repeatable); default: all")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed passes per retrieval and features measurement, fastest "
                             "counts (3: "
                             "steady on a shared CPU; 1: quickest)")
    args = parser.parse_args()
    only = set(args.only or ["retrieval", "probe", "features", "probe_images"])
    if "retrieval" in only:
        bench_retrieval(4000, sample=200, repeat=args.repeat)
        if not args.quick:
            bench_retrieval(20000, sample=100, repeat=args.repeat)
    if "probe" in only:
        bench_probe(*((1000, 1000) if args.quick else (3680, 3669)))
    if "features" in only:
        bench_features(256 if args.quick else 2048, args.full, args.repeat)
    if "probe_images" in only:  # 1,500: two steps an epoch, the second one short
        bench_probe_images(1500, args.full, 1 if args.quick else 3)


if __name__ == "__main__":
    main()
