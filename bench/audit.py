"""Benchmark the audit measures: images/s of each, on toy-world images.

Each pixel measure runs on decoded uint8 images (decoding timed separately); embedding
measures run on random 384-d embeddings (ViT-S width) of the audited set's size. The goal:
the whole audit of 15k images in minutes, so every measure must do well over 50 images/s.

The model-backed measures (the embedder's feature extraction, the OWL-ViT detector, the
BLIP VQA person-blocking judge) run on the GPU when there is one, through the audit's own
loaders, each with the projected time of a 15k-image audit. Without a weights flag each is
a random model built in a temporary folder: tiny by default (the pipeline's overhead), or
the real architecture with ``--full-size`` (the real model's speed).

Usage: ``python bench/audit.py [--quick] [--size 256] [--full-size] [--device cuda]
[--embedder-model vit_small_patch16_224 --embedder-weights FILE] [--owlvit-weights DIR]
[--vlm-weights DIR]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from synreal.audit import tiny
from synreal.audit.blank import blank_flags
from synreal.audit.brightness import lightness, mean_lightness
from synreal.audit.diversity import mean_pairwise_cosine_distance
from synreal.audit.fid import fid, kid
from synreal.audit.foreground import foreground_boxes
from synreal.audit.near_duplicates import nearest_other, pairs_within
from synreal.audit.object_scale import query_text
from synreal.audit.params import SYNBENCH_QUESTION
from synreal.audit.person_blocking import PERSON_QUERY, covered_fraction
from synreal.data.manifest import load_rgb
from synreal.data.toyworld import BREEDS, WorldParams, image_rng, render

AUDIT_IMAGES = 15_000


def timed(label: str, n: int, fn) -> float:
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    rate = n / seconds
    print(f"{label:<42} {rate:>12,.{0 if rate >= 100 else 2}f} images/s  ({seconds:.2f} s for {n})")
    return seconds


def timed_model(label: str, n: int, fn, warmup) -> None:
    """:func:`timed` after one warm-up call (CUDA context, kernels), plus the 15k projection."""
    warmup()
    seconds = timed(label, n, fn)
    print(f"{'':<42} {AUDIT_IMAGES * seconds / n / 60:>12,.1f} min for {AUDIT_IMAGES:,}")


def batched(items: list, size: int):
    return [items[i:i + size] for i in range(0, len(items), size)]


def bench_models(args, paths: list[Path], images: list[np.ndarray], names: list[str],
                 work: Path) -> None:
    """Embedder, OWL-ViT and BLIP VQA judge through the audit's loaders, on ``args.device``."""
    from synreal.audit.embedders import colour_layout, create_embedder
    from synreal.audit.owlvit import OwlVitDetector
    from synreal.audit.vlm import BlipVqaJudge

    kind = "full-size random" if args.full_size else "tiny random"
    print(f"\nmodel-backed measures on {args.device} (batch {args.batch}; without a weights "
          f"flag each model is {kind})")
    files = [str(p) for p in paths]
    n = len(files)
    timed_model("embedder: colour-layout (weights-free)", n, lambda: colour_layout(files),
                lambda: colour_layout(files[:2]))
    model = args.embedder_model or ("vit_small_patch16_224" if args.full_size else "test_vit")
    weights = args.embedder_weights or tiny.build_timm_weights(work / "embedder.safetensors",
                                                               model)
    embed = create_embedder("timm", model, str(weights), args.device)
    timed_model(f"embedder: timm {model}", n, lambda: embed(files), lambda: embed(files[:2]))

    owlvit = args.owlvit_weights or tiny.build_owlvit(work / "owlvit", args.full_size)
    detector = OwlVitDetector(str(owlvit), "google/owlvit-base-patch32", "scale_weights",
                              args.device)

    def detect(count: int) -> None:  # the person backend's query; the object's costs the same
        for chunk in batched(list(range(count)), args.batch):
            detector.detect([images[i] for i in chunk], [[PERSON_QUERY]] * len(chunk), 0.1)

    timed_model("person (or object) boxes: OWL-ViT", n, lambda: detect(n), lambda: detect(2))

    blip = args.vlm_weights or tiny.build_blip_vqa(work / "blip-vqa", args.full_size)
    judge = BlipVqaJudge(str(blip), "Salesforce/blip-vqa-base", device=args.device,
                         batch_size=args.batch)
    questions = [query_text(SYNBENCH_QUESTION, name) for name in names]
    timed_model("person blocking: BLIP VQA (all asked)", n,
                lambda: judge.answer(images, questions, progress=False),
                lambda: judge.answer(images[:2], questions[:2], progress=False))
    print("  (the audit asks the judge only about the images with a detected person)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="64 images, 2k embeddings")
    parser.add_argument("--size", type=int, default=256, help="image side (AFHQ: 256)")
    parser.add_argument("--device", default=None,
                        help="device of the model-backed measures (default: cuda if present)")
    parser.add_argument("--batch", type=int, default=64, help="model batch (audit batch_size)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is fastest when other jobs share the cores)")
    parser.add_argument("--full-size", action="store_true",
                        help="random models of the real architectures instead of tiny ones")
    parser.add_argument("--embedder-model", default=None,
                        help="timm name of the embedder (tiny: test_vit; full: vit_small)")
    parser.add_argument("--embedder-weights", default=None, help="its local weights file")
    parser.add_argument("--owlvit-weights", default=None, help="local OWL-ViT folder")
    parser.add_argument("--vlm-weights", default=None, help="local BLIP VQA folder")
    parser.add_argument("--skip-models", action="store_true", help="CPU measures only")
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

    if not args.skip_models:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        names = [BREEDS[i % len(BREEDS)].name for i in range(n_img)]
        bench_models(args, paths, images, names, folder / "models")


if __name__ == "__main__":
    main()
