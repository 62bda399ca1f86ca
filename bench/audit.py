"""Benchmark the audit measures: images/s of each, on toy-world images.

Each pixel measure runs on decoded uint8 images (decoding timed separately); embedding
measures run on random 384-d embeddings (ViT-S width) of the audited set's size. The goal:
the whole audit of 15k images in minutes, so every measure must do well over 50 images/s.

The model-backed measures of the full study (DINOv2-B embedder, ConvNeXt-B consistency,
CLIP ViT-B/32 zero-shot, Inception-v3 FID features, the OWLv2 detector for object and
person boxes, the BLIP VQA judge) run on the GPU when there is one, through the audit's own
loaders, each with the projected time of a 15k-image audit. The OWLv2 line is measured
twice in the same run: one shared pass (what the audit does) and the baseline of two
separate passes. Without a weights flag each is a random model built in a temporary folder:
tiny by default (the pipeline's overhead), or the real architecture with ``--full-size``
(the real model's speed, not its answers).

Usage: ``python bench/audit.py [--quick] [--size 256] [--full-size] [--device cuda]
[--model-images 64] [--dinov2-weights DIR] [--convnext-weights DIR] [--clip-weights DIR]
[--fid-weights FILE] [--owlvit-weights DIR] [--vlm-weights DIR] [--skip-vlm]
[--only-detector]``.
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
from synreal.audit.owlvit import PERSON_QUERY
from synreal.audit.params import SYNBENCH_QUESTION
from synreal.audit.person_blocking import covered_fraction
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


def timed_model(label: str, n: int, fn, warmup) -> float:
    """:func:`timed` after one warm-up call (CUDA context, kernels), plus the 15k projection."""
    warmup()
    seconds = timed(label, n, fn)
    print(f"{'':<42} {AUDIT_IMAGES * seconds / n / 60:>12,.1f} min for {AUDIT_IMAGES:,}")
    return seconds


def batched(items: list, size: int):
    return [items[i:i + size] for i in range(0, len(items), size)]


def bench_classifiers(args, files: list[str], names: list[str], work: Path) -> None:
    """The embedders, the consistency classifiers and FID's Inception, one line each."""
    import pandas as pd

    from synreal.audit import consistency
    from synreal.audit.embedders import colour_layout, create_embedder
    from synreal.audit.inception import inception_embedder
    from synreal.audit.params import AuditParams

    n = len(files)
    timed_model("embedder: colour-layout (weights-free)", n, lambda: colour_layout(files),
                lambda: colour_layout(files[:2]))
    dinov2 = args.dinov2_weights or tiny.build_dinov2(work / "dinov2", args.full_size)
    embed = create_embedder("dinov2", None, str(dinov2), args.device)
    timed_model("embedder: DINOv2-B/14 CLS (224 px)", n, lambda: embed(files),
                lambda: embed(files[:2]))
    frame = pd.DataFrame({"path": files, "label_name": names})
    classes = sorted(set(names))
    inputs = consistency.ConsistencyInputs(frame, classes)
    convnext = args.convnext_weights or tiny.build_convnext(work / "convnext", args.full_size)
    timm_params = AuditParams(consistency_backend="timm", consistency_weights=str(convnext),
                              batch_size=args.batch, device=args.device)
    timed_model("consistency: ConvNeXt-B (timm, 224 px)", n,
                lambda: consistency.timm_classifier(inputs, timm_params),
                lambda: consistency.timm_classifier(
                    consistency.ConsistencyInputs(frame.head(2), classes), timm_params))
    clip = args.clip_weights or tiny.build_open_clip(work / "open_clip", args.full_size)
    clip_params = AuditParams(clip_weights=str(clip), batch_size=args.batch,
                              device=args.device)
    timed_model("consistency: CLIP ViT-B/32 zero-shot", n,
                lambda: consistency.clip_beside(clip_params, inputs),
                lambda: consistency.clip_beside(
                    clip_params, consistency.ConsistencyInputs(frame.head(2), classes)))
    fid_file = args.fid_weights or tiny.build_fid_inception(work / "pt_inception.pth")
    fid_embed = inception_embedder(str(fid_file), args.batch, args.device)
    timed_model("FID features: Inception-v3 pool3 (299 px)", n, lambda: fid_embed(files),
                lambda: fid_embed(files[:2]))


def bench_models(args, paths: list[Path], images: list[np.ndarray], names: list[str],
                 work: Path) -> None:
    """Every model-backed measure of the full study through the audit's loaders.

    DINOv2-B embedder, ConvNeXt-B consistency, CLIP ViT-B/32 zero-shot, Inception-v3 FID
    features, the OWLv2 pass (one shared pass for object and person boxes against the
    baseline of two separate passes, measured in the same run) and the BLIP VQA judge.
    """
    from synreal.audit.classes import object_phrases
    from synreal.audit.owlvit import OwlPass
    from synreal.audit.vlm import BlipVqaJudge

    kind = "full-size random" if args.full_size else "tiny random"
    print(f"\nmodel-backed measures on {args.device} (batch {args.batch}; without a weights "
          f"flag each model is {kind})")
    files = [str(p) for p in paths[:args.model_images]]
    n = len(files)
    images = images[:n]
    if not args.only_detector:
        bench_classifiers(args, files, names[:n], work)
    owl = args.owlvit_weights or tiny.build_owlv2(work / "owlv2", args.full_size)
    phrases = [object_phrases(name) for name in names[:n]]
    shared = OwlPass(str(owl), "google/owlv2-base-patch16-ensemble", "scale_weights",
                     args.device)
    shared.person = True
    detector = shared.detector

    def one_pass(count: int) -> None:  # object phrases and the person query, one forward
        for chunk in batched(list(range(count)), args.batch):
            shared.detect([images[i] for i in chunk], [phrases[i] for i in chunk], 0.1)

    def two_passes(count: int) -> None:  # the baseline: object pass, then person pass
        for chunk in batched(list(range(count)), args.batch):
            batch = [images[i] for i in chunk]
            asked = sorted({p for i in chunk for p in phrases[i]})
            detector.detect(batch, [asked] * len(batch), 0.1)
            detector.detect(batch, [[PERSON_QUERY]] * len(batch), 0.1)

    baseline = timed_model("object + person boxes: OWLv2, two passes", n,
                           lambda: two_passes(n), lambda: two_passes(2))
    shared_seconds = timed_model("object + person boxes: OWLv2, one pass", n,
                                 lambda: one_pass(n), lambda: one_pass(2))
    print(f"  one pass against two, same run: {baseline / shared_seconds:.2f}x the speed")

    if args.skip_vlm:
        return
    blip = args.vlm_weights or tiny.build_blip_vqa(work / "blip-vqa", args.full_size)
    judge = BlipVqaJudge(str(blip), "Salesforce/blip-vqa-base", device=args.device,
                         batch_size=args.batch)
    questions = [query_text(SYNBENCH_QUESTION, name) for name in names[:n]]
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
    parser.add_argument("--model-images", type=int, default=64,
                        help="images each model-backed measure reads (CPU: a few dozen)")
    parser.add_argument("--dinov2-weights", default=None, help="local DINOv2 folder")
    parser.add_argument("--convnext-weights", default=None, help="local timm ConvNeXt folder")
    parser.add_argument("--clip-weights", default=None, help="local open_clip folder")
    parser.add_argument("--fid-weights", default=None, help="FID Inception-v3 weights file")
    parser.add_argument("--owlvit-weights", default=None, help="local OWL-ViT/OWLv2 folder")
    parser.add_argument("--skip-vlm", action="store_true", help="skip the BLIP VQA judge")
    parser.add_argument("--vlm-weights", default=None, help="local BLIP VQA folder")
    parser.add_argument("--skip-models", action="store_true", help="CPU measures only")
    parser.add_argument("--only-detector", action="store_true",
                        help="of the model-backed measures, the OWLv2 passes (and the judge)")
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
