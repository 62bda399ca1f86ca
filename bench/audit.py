"""Benchmark the audit measures on CPU: images/s of each, on toy-world images.

Each pixel measure runs on decoded uint8 images (decoding timed separately); embedding
measures run on random 384-d embeddings (ViT-S width) of the audited set's size. The goal:
the whole audit of 15k images in minutes, so every measure must do well over 50 images/s.

Usage: ``python bench/audit.py [--quick] [--size 256]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from synreal.audit.blank import blank_flags
from synreal.audit.brightness import lightness, mean_lightness
from synreal.audit.diversity import mean_pairwise_cosine_distance
from synreal.audit.fid import fid, kid
from synreal.audit.foreground import foreground_boxes
from synreal.audit.near_duplicates import nearest_other, pairs_within
from synreal.audit.person_blocking import covered_fraction
from synreal.data.manifest import load_rgb
from synreal.data.toyworld import BREEDS, WorldParams, image_rng, render


def timed(label: str, n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    print(f"{label:<42} {n / seconds:>12,.0f} images/s  ({seconds:.2f} s for {n})")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="64 images, 2k embeddings")
    parser.add_argument("--size", type=int, default=256, help="image side (AFHQ: 256)")
    args = parser.parse_args()
    n_img, n_emb = (64, 2000) if args.quick else (512, 15000)

    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    paths = []
    for i in range(n_img):
        image, _ = render(BREEDS[i % len(BREEDS)], args.size, image_rng(0, i), WorldParams())
        paths.append(folder / f"{i}.png")
        image.save(paths[-1])
    images: list[np.ndarray] = []
    timed("decode (load_rgb)", n_img, lambda: images.extend(load_rgb(p) for p in paths))
    batch = np.stack(images)
    timed("brightness (mean L*, batch)", n_img, lambda: mean_lightness(batch))
    timed("brightness (mean L*, per image)", n_img,
          lambda: [float(lightness(im).mean()) for im in images])
    timed("blank flags", n_img, lambda: blank_flags(batch))
    timed("object scale: foreground (96 px)", n_img, lambda: foreground_boxes(images))
    rng = np.random.default_rng(0)
    boxes = rng.random((n_emb, 4)).cumsum(1) / 4
    persons = [rng.random((rng.integers(0, 3), 4)).cumsum(1) / 4 for _ in range(n_emb)]
    timed("person blocking rule", n_emb, lambda: covered_fraction(boxes, persons))

    emb = rng.normal(size=(n_emb, 384)).astype(np.float32)
    ref = rng.normal(size=(n_emb, 384)).astype(np.float32) + 0.1
    timed("diversity (exact, O(n d))", n_emb, lambda: mean_pairwise_cosine_distance(emb))
    timed("near-duplicates within (faiss range)", n_emb, lambda: pairs_within(emb, 0.95))
    timed("nearest other (faiss k=2)", n_emb, lambda: nearest_other(emb))
    timed("FID (384-d, sqrtm)", n_emb, lambda: fid(emb, ref))
    timed("KID (100 x 1000 subsets)", n_emb, lambda: kid(emb, ref, 100, 1000))


if __name__ == "__main__":
    main()
