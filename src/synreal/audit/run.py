"""The audit of one dataset: every measure per image, a summary, SynBench's figures.

:func:`audit_dataset` reads a manifest (real or synthetic), decodes each image once and
measures it (brightness, blank, object box, person boxes), asks the optional
vision-language judge about the images with a person, embeds it once with the configured
feature extractor (class consistency by probe, diversity, FID/KID, near-duplicates), and
writes into ``out_dir``:

* ``audit.parquet``: one row per image with every measure (NaN = not measured); person
  blocking as ``person_boxes`` (person boxes found, not de-duplicated), the overlap rule's
  ``person_covered`` / ``person_blocked`` and the judge's raw ``person_vlm_answer`` and
  ``person_vlm_blocked`` verdict;
* ``summary.json``: quantiles, rates, FID/KID, diversity, near-duplicate counts, the real
  reference's figures beside the audited set's, and a leakage warning when synthetic images
  match downstream test images. Diversity and FID carry a seeded bootstrap 95 % CI over
  images (``ci_low``, ``ci_high``, ``resamples``; see :mod:`~synreal.audit.diversity` and
  :mod:`~synreal.audit.fid` for how each is resampled);
* ``reference_consistency.parquet``: the real images held out from the consistency probe
  (``id``, ``label_name``, ``predicted``, ``consistent``), from which the reference rate's
  CI is computed; written when the reference classifier measures one;
* ``scale.png``, ``brightness.png``, ``person_blocking.png`` (SynBench Fig. 5a-c, audited
  set vs reference) and ``consistency_confusion.png`` (Fig. 4).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from synreal.audit import consistency, diversity, fid, near_duplicates, object_scale, vlm
from synreal.audit import person_blocking as blocking
from synreal.audit.blank import blank_flags, decode_or_reason
from synreal.audit.brightness import lightness
from synreal.audit.params import AuditParams
from synreal.audit.plots import plot_distributions, plot_rates
from synreal.data.manifest import load_rgb

#: ``embed(paths) -> (N, d) float32``: the frozen feature extractor the stage configures.
Embed = Callable[[Sequence[str]], np.ndarray]

AUDIT_FILE = "audit.parquet"
SUMMARY_FILE = "summary.json"
REFERENCE_CONSISTENCY_FILE = "reference_consistency.parquet"
PIXEL_COLUMNS = ("brightness_lstar", "scale_area_ratio", "box_x0", "box_y0", "box_x1",
                 "box_y1", "person_boxes", "person_covered", "person_blocked",
                 "person_vlm_answer", "person_vlm_blocked", "blank", "blank_constant",
                 "blank_black", "blank_white", "corrupt", "corrupt_reason")


def measure_pixels(params: AuditParams, manifest: pd.DataFrame,
                   finder: object_scale.BoxFinder, persons: blocking.PersonDetector,
                   judge: vlm.YesNoJudge | None = None) -> pd.DataFrame:
    """Decode each image once; brightness, blank flags, object box and person blocking.

    The ``judge`` (None: not asked) runs after the loop on the images with a person only,
    decoding them again: few images have a person, and one pass over all of them fills its
    batches, which per-loop-batch calls would leave mostly empty.

    Returns a frame aligned with ``manifest`` with :data:`PIXEL_COLUMNS`.
    """
    parts = []
    with ThreadPoolExecutor(max_workers=params.workers) as pool:
        for start in range(0, len(manifest), params.batch_size):
            rows = manifest.iloc[start:start + params.batch_size]
            decoded = list(pool.map(lambda p: decode_or_reason(load_rgb, p), rows["path"]))
            parts.append(_measure_batch(params, rows, decoded, finder, persons, pool))
    if not parts:
        return pd.DataFrame(columns=list(PIXEL_COLUMNS))
    pixels = pd.concat(parts, ignore_index=True)
    if judge is not None:
        pixels["person_vlm_answer"], pixels["person_vlm_blocked"] = blocking.judge_blocking(
            judge, params.person_vlm_question, list(manifest["path"]),
            [str(n) for n in manifest["label_name"]], pixels["person_boxes"].to_numpy())
    return pixels


def _measure_batch(params: AuditParams, rows: pd.DataFrame, decoded: list, finder, persons,
                   pool: ThreadPoolExecutor) -> pd.DataFrame:
    ok = np.array([image is not None for image, _ in decoded])
    images = [image for image, _ in decoded if image is not None]
    good = rows[ok]
    n = len(rows)
    out: dict[str, Any] = {c: np.full(n, np.nan) for c in PIXEL_COLUMNS}
    out["corrupt"] = ~ok
    out["corrupt_reason"] = [reason for _, reason in decoded]
    out["person_vlm_answer"] = np.full(n, None, dtype=object)
    if images:
        out["brightness_lstar"][ok] = list(pool.map(lambda im: float(lightness(im).mean()),
                                                    images))
        flags = [blank_flags(im[None], params.constant_std, params.black_max, params.white_min)
                 for im in images]
        for key in ("blank", "constant", "black", "white"):
            column = "blank" if key == "blank" else f"blank_{key}"
            out[column][ok] = [float(f[key][0]) for f in flags]
        boxes = np.full((n, 4), np.nan)
        boxes[ok] = finder.boxes(images, good)
        for i, name in enumerate(("box_x0", "box_y0", "box_x1", "box_y1")):
            out[name] = boxes[:, i]
        out["scale_area_ratio"] = object_scale.area_ratio(boxes)
        if persons.measured:
            found = persons.persons(images, good)
            out["person_boxes"][ok] = [len(p) for p in found]
            covered = np.full(n, np.nan)
            covered[ok] = blocking.covered_fraction(boxes[ok], found)
            out["person_covered"] = covered
            out["person_blocked"] = blocking.is_blocked(covered, params.blocking_overlap)
    return pd.DataFrame(out)


def distribution(values: np.ndarray, quantiles: Sequence[float]) -> dict[str, float | None]:
    """Quantiles ``q05``... plus mean, std, IQR (q75 - q25) and count of finite ``values``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    out: dict[str, float | None] = {f"q{round(100 * q):02d}": float(np.quantile(v, q))
                                    for q in quantiles}
    q25, q75 = np.quantile(v, [0.25, 0.75])
    return {**out, "mean": float(v.mean()), "std": float(v.std()), "iqr": float(q75 - q25),
            "n": int(len(v))}


def _rate(flags: pd.Series) -> float | None:
    values = pd.to_numeric(flags, errors="coerce").to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else None


def pixel_summary(table: pd.DataFrame, params: AuditParams, person_measured: bool) -> dict:
    """Brightness / scale distributions, person-blocking and blank rates of a measured table."""
    return {
        "n_images": int(len(table)),
        "corrupt": int(table["corrupt"].sum()),
        "blank": {"rate": _rate(table["blank"]),
                  **{k: int(np.nansum(table[f"blank_{k}"].to_numpy(float)))
                     for k in ("constant", "black", "white")}},
        "brightness": distribution(table["brightness_lstar"], params.quantiles),
        "scale": _scale_summary(table, params),
        "person_blocking": {"measured": person_measured,
                            "rate": _rate(table["person_blocked"]) if person_measured else None,
                            "overlap_threshold": params.blocking_overlap,
                            **_vlm_summary(table, params, person_measured)},
    }


def _scale_summary(table: pd.DataFrame, params: AuditParams) -> dict:
    """Object-scale distribution and the share of images where no central object was found."""
    found = _rate(table["scale_area_ratio"].notna().astype(float)
                  [~table["corrupt"].astype(bool)])
    return {**distribution(table["scale_area_ratio"], params.quantiles), "found_rate": found,
            "not_found_rate": None if found is None else 1.0 - found}


def audit_models(params: AuditParams, embed_name: str, person_measured: bool) -> dict:
    """Which model made each measure, for the summary and every table caption."""
    detectors = {"owlvit": "OWL-ViT/OWLv2", "yolo-world": "YOLO-World",
                 "foreground": "weights-free foreground box (demo)",
                 "boxes-from-column": "boxes given in the manifest", "none": "not measured"}

    def detector(backend: str, model_id: str) -> str:
        if backend in ("owlvit", "yolo-world"):
            return f"{detectors[backend]} ({model_id})"
        return detectors[backend]

    consistency_models = {
        "timm": f"ImageNet classifier {params.consistency_model} "
                f"({params.consistency_model_id}), ImageNet classes mapped to the dataset's",
        "clip-zeroshot": f"CLIP zero-shot ({params.consistency_model})",
        "probe-on-real": f"logistic probe on {embed_name} fitted on the real images",
        "none": "not measured"}
    blocking = ("not measured" if not person_measured else
                f"person-box overlap > {params.blocking_overlap:g} of the object box "
                f"({detector(params.person_backend, params.person_model_id)})")
    return {
        "object_scale": detector(params.scale_backend, params.scale_model_id),
        "person_boxes": detector(params.person_backend, params.person_model_id),
        "person_blocking": blocking,
        "person_vlm": (None if params.person_vlm == "none"
                       else f"{params.person_vlm} ({params.person_vlm_model_id})"),
        "consistency": consistency_models[params.consistency_backend],
        "consistency_clip": (f"CLIP zero-shot ({params.clip_model_id})"
                             if params.clip_weights else None),
        "embedding": embed_name,
        "fid": ("Inception-v3 pool3 2048-d (standard FID weights, TF1 bilinear resize to 299)"
                if params.fid_features == "inception" else
                f"{embed_name} (not Inception: not comparable with published FIDs)"),
    }


def _vlm_summary(table: pd.DataFrame, params: AuditParams, person_measured: bool) -> dict:
    """``{"vlm": ...}``: the judge's blocking rate and answer counts; empty without a judge.

    The rate is over the measured images with a yes or no verdict (an image without a
    person counts as not blocked); unknown answers are counted apart, never as no.
    """
    if params.person_vlm == "none":
        return {}
    parsed = [vlm.parse_answer(a) for a in table["person_vlm_answer"].dropna()]
    return {"vlm": {
        "judge": params.person_vlm, "model_id": params.person_vlm_model_id,
        "question": params.person_vlm_question,
        "rate": _rate(table["person_vlm_blocked"]) if person_measured else None,
        "asked": len(parsed), **{k: parsed.count(k) for k in (vlm.YES, vlm.NO, vlm.UNKNOWN)}}}


def audit_dataset(params: AuditParams, manifest: pd.DataFrame, out_dir: Path, *,
                  reference_manifest: pd.DataFrame | None = None,
                  test_manifest: pd.DataFrame | None = None, embed: Embed | None = None,
                  fid_embed: Embed | None = None, name: str = "audited",
                  reference_name: str = "real", embed_name: str = "custom embedding") -> dict:
    """Audit ``manifest`` (against ``reference_manifest``, the real data) into ``out_dir``.

    Args:
        params: every control (backends, thresholds, batch size).
        manifest: the audited dataset (``id, path, label, label_name, split, width, height``
            and, for ``boxes-from-column`` backends, the box columns).
        out_dir: where ``audit.parquet``, ``summary.json`` and the figures go.
        reference_manifest: the real dataset of the same classes (None when auditing it):
            fits probe-on-real (non-test rows only), anchors FID/KID and the box plots.
        test_manifest: the downstream test set, searched for leaked near-duplicates.
        embed: ``paths -> (N, d)`` features for consistency, diversity, near-duplicates.
        fid_embed: features for FID/KID (default ``embed``); with ``fid_features``
            ``inception``, the FID Inception-v3 (:mod:`~synreal.audit.inception`).
        name, reference_name: dataset labels in the figures.
        embed_name: what ``embed`` is, for the summary's ``models`` block and the tables.

    Returns:
        The summary (also written to ``summary.json``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest.reset_index(drop=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    finder = object_scale.create(params.scale_backend, params)
    persons = blocking.create(params.person_backend, params)
    judge = vlm.create(params.person_vlm, params)
    table = pd.concat([manifest[[c for c in ("id", "label", "label_name", "split", "path")
                                 if c in manifest]],
                       measure_pixels(params, manifest, finder, persons, judge)], axis=1)
    summary: dict[str, Any] = {"dataset": name, **pixel_summary(table, params, persons.measured)}
    reference = None
    if reference_manifest is not None:
        reference = reference_manifest.reset_index(drop=True)
        reference = reference[consistency._non_test(reference)].reset_index(drop=True)
        ref_table = measure_pixels(params, reference, finder, persons, judge)
        summary["reference"] = {"dataset": reference_name,
                                **pixel_summary(ref_table, params, persons.measured)}
    timings["pixels"] = time.perf_counter() - clock

    clock = time.perf_counter()
    usable = ~table["corrupt"].to_numpy(bool)
    emb = _embed_rows(embed, manifest, usable)
    ref_emb = _embed_rows(embed, reference, None) if reference is not None else None
    timings["embed"] = time.perf_counter() - clock
    _consistency(params, table, summary, manifest, usable, emb, reference, ref_emb, out_dir)
    _embedding_measures(params, table, summary, manifest, usable, emb, reference, ref_emb,
                        test_manifest, embed, (reference_name, name))
    summary["fid"] = _fid(params, manifest, usable, emb, reference, ref_emb, fid_embed)
    summary["models"] = audit_models(params, embed_name, person_measured=persons.measured)
    timings["embedding_measures"] = time.perf_counter() - clock - timings["embed"]
    summary["seconds"] = timings
    summary["params"] = {k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in params.__dict__.items()}

    table.drop(columns=["path"]).to_parquet(out_dir / AUDIT_FILE, index=False)
    _figures(table, summary, ref_table if reference is not None else None, name,
             reference_name, out_dir)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(_jsonable(summary), indent=2))
    return summary


def _embed_rows(embed: Embed | None, frame: pd.DataFrame | None,
                usable: np.ndarray | None) -> np.ndarray | None:
    if embed is None or frame is None:
        return None
    paths = frame["path"] if usable is None else frame["path"][usable]
    return np.asarray(embed(list(paths)), dtype=np.float32) if len(paths) else None


def _consistency(params, table, summary, manifest, usable, emb, reference, ref_emb,
                 out_dir) -> None:
    from synreal.eval.plots import plot_confusion_matrix

    source = reference if reference is not None else manifest[usable]
    order = source.drop_duplicates("label_name").sort_values("label")
    inputs = consistency.ConsistencyInputs(manifest[usable].reset_index(drop=True),
                                           [str(n) for n in order["label_name"]], emb,
                                           reference, ref_emb)
    result = consistency.class_consistency(params, inputs)
    predicted = np.full(len(table), None, dtype=object)
    consistent = np.full(len(table), np.nan)
    if result.measured:
        predicted[usable] = [inputs.class_names[i] for i in result.predicted]
        consistent[usable] = result.consistent
        plot_confusion_matrix(result.confusion, result.class_names,
                              out_dir / "consistency_confusion.png",
                              title=f"Class consistency {result.rate:.1%} "
                                    f"({params.consistency_backend})")
    table["consistency_predicted"] = predicted
    table["consistent"] = consistent
    summary["consistency"] = {"backend": params.consistency_backend, **result.summary()}
    beside = consistency.clip_beside(params, inputs)
    clip_column = np.full(len(table), np.nan)
    if beside is not None:
        clip_column[usable] = beside.consistent
        summary["consistency_clip"] = {"backend": "clip-zeroshot",
                                       "model_id": params.clip_model_id, **beside.summary()}
    table["clip_consistent"] = clip_column
    if result.reference_rows is not None:
        held = (reference if reference is not None else inputs.manifest).iloc[
            result.reference_rows]
        pd.DataFrame({"id": held["id"].astype(str).to_numpy(),
                      "label_name": held["label_name"].astype(str).to_numpy(),
                      "predicted": [inputs.class_names[i] for i in result.reference_predicted],
                      "consistent": result.reference_consistent}
                     ).to_parquet(out_dir / REFERENCE_CONSISTENCY_FILE, index=False)


def _threshold(params: AuditParams, emb, ref_emb, reference_name: str, name: str) -> dict:
    """The near-duplicate / leak threshold: configured, or calibrated on real data."""
    if params.duplicate_threshold is not None:
        return {"threshold": float(params.duplicate_threshold), "source": "configured"}
    real, source = (ref_emb, reference_name) if ref_emb is not None else (emb, name)
    if real is None:
        return {"threshold": None, "source": "not calibrated (no embeddings)"}
    found = near_duplicates.calibrate_threshold(real, params.duplicate_quantile, params.seed)
    return {**found, "source": (f"q{100 * params.duplicate_quantile:g} of nearest-neighbour "
                                f"cosine between two disjoint random halves of {source} "
                                f"({found['n_pairs']} pairs)")}


def _embedding_measures(params, table, summary, manifest, usable, emb, reference, ref_emb,
                        test_manifest, embed, names) -> None:
    ids = manifest["id"].astype(str).to_numpy()
    dup_sim, dup_id = np.full(len(table), np.nan), np.full(len(table), None, dtype=object)
    test_sim, test_id = np.full(len(table), np.nan), np.full(len(table), None, dtype=object)
    leak = np.full(len(table), None, dtype=object)
    calibrated = _threshold(params, emb, ref_emb, *names)
    threshold = calibrated["threshold"]
    dups: dict[str, Any] = {**calibrated}
    if emb is not None:
        spread = diversity.diversity_bootstrap(emb, params.diversity_resamples,
                                               seed=params.seed)
        summary["diversity"] = {
            "mean_pairwise_cosine_distance": spread.estimate, "ci_low": spread.lo,
            "ci_high": spread.hi, "resamples": params.diversity_resamples,
            "per_class": diversity.per_class_diversity(emb, manifest["label_name"][usable])}
        if ref_emb is not None:
            summary["reference"]["diversity"] = diversity.mean_pairwise_cosine_distance(ref_emb)
        sims, idx = near_duplicates.nearest_other(emb)
        dup_sim[usable] = sims
        dup_id[usable] = ids[usable][np.maximum(idx, 0)]
        if threshold is not None and np.isfinite(threshold):
            pairs = near_duplicates.pairs_within(emb, threshold)
            dups.update(pairs_within=int(len(pairs)),
                        images_with_duplicate=int((sims > threshold).sum()))
    if "sha256" in manifest:
        dups["exact_within"] = int(manifest["sha256"].duplicated(keep=False).sum())
    if test_manifest is not None:
        _leaks(params, manifest, usable, emb, test_manifest, embed, threshold, dups,
               (test_sim, test_id, leak))
    table["dup_nearest_similarity"], table["dup_nearest_id"] = dup_sim, dup_id
    table["test_nearest_similarity"], table["test_nearest_id"] = test_sim, test_id
    table["test_leak"] = leak
    leaked = dups.get("leaks", 0)
    summary["near_duplicates"] = dups
    summary["leakage_warning"] = (
        f"{leaked} image(s) of this set match downstream test images (identical file, or "
        f"embedding cosine > {threshold:.4f}); remove them before training, or the test score "
        "is inflated." if leaked else None)


def _leaks(params, manifest, usable, emb, test_manifest, embed, threshold, dups,
           columns) -> None:
    """Match the set's images with the test split's: exact files, then near copies.

    A row that *is* a test image (same id and file: the evaluation dataset audited
    itself) is never checked against the test split; only the other rows are.
    """
    test_sim, test_id, leak = columns
    test_manifest = test_manifest.reset_index(drop=True)
    test_rows = set(zip(test_manifest["id"].astype(str), test_manifest["path"].astype(str),
                        strict=True))
    own = np.array([row in test_rows for row in zip(manifest["id"].astype(str),
                                                    manifest["path"].astype(str),
                                                    strict=True)], dtype=bool)
    checked = ~own
    dups["leak_checked"] = int(checked.sum())
    dups["leak_skipped_test_rows"] = int(own.sum())
    exact = np.zeros(len(manifest), bool)
    if "sha256" in manifest and "sha256" in test_manifest:
        exact = manifest["sha256"].isin(set(test_manifest["sha256"])).to_numpy() & checked
        dups["exact_test"] = int(exact.sum())
    leak[exact] = "exact"
    test_emb = _embed_rows(embed, test_manifest, None)
    if emb is not None and test_emb is not None:
        sims, idx = near_duplicates.nearest_in(emb, test_emb)
        test_sim[usable] = sims
        test_id[usable] = test_manifest["id"].astype(str).to_numpy()[idx]
        if threshold is not None and np.isfinite(threshold):
            near = np.zeros(len(manifest), bool)
            near[usable] = sims > threshold
            near &= checked & ~exact
            leak[near] = "near"
            dups["test_matches"] = int(near.sum())
    test_sim[~checked], test_id[~checked] = np.nan, None
    dups["leaks"] = int(sum(v is not None for v in leak))


def _fid(params, manifest, usable, emb, reference, ref_emb, fid_embed) -> dict | None:
    if reference is None:
        return None
    if fid_embed is not None:
        emb = _embed_rows(fid_embed, manifest, usable)
        ref_emb = _embed_rows(fid_embed, reference, None)
    if emb is None or ref_emb is None or min(len(emb), len(ref_emb)) < 2:
        return None
    kid_mean, kid_std = fid.kid(emb, ref_emb, params.kid_subsets, params.kid_subset_size,
                                seed=params.seed)
    interval, bias = fid.fid_bootstrap(emb, ref_emb, params.fid_resamples, seed=params.seed)
    return {"fid": interval.estimate, "ci_low": interval.lo, "ci_high": interval.hi,
            "resamples": params.fid_resamples, "bootstrap_bias": bias, "kid_mean": kid_mean,
            "kid_std": kid_std, "n": int(len(emb)), "n_reference": int(len(ref_emb))}


def _figures(table, summary, ref_table, name, reference_name, out_dir) -> None:
    sets = {name: table} if ref_table is None else {reference_name: ref_table, name: table}
    plot_distributions({k: t["scale_area_ratio"] for k, t in sets.items()},
                       out_dir / "scale.png", "object box area / image area",
                       "Object scale (SynBench Fig. 5a)")
    plot_distributions({k: t["brightness_lstar"] for k, t in sets.items()},
                       out_dir / "brightness.png", "mean CIELAB L*",
                       "Brightness (SynBench Fig. 5b)")
    blocks = {name: summary["person_blocking"]}
    if ref_table is not None:
        blocks = {reference_name: summary["reference"]["person_blocking"], **blocks}
    rates: dict[str, float | None] = {}
    for label, block in blocks.items():
        rates[label if "vlm" not in block else f"{label}: overlap"] = block["rate"]
        if "vlm" in block:
            rates[f"{label}: VLM yes"] = block["vlm"]["rate"]
    plot_rates(rates, out_dir / "person_blocking.png", "% images person-blocked",
               "Person blocking (SynBench Fig. 5c)")


def _jsonable(value: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
