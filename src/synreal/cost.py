"""A study's GPU-hours per stage, from measured throughputs that cite their sources.

The throughputs live in ``docs/throughput.md``, one table row per (stage, model, setting,
GPU) with its source; this module multiplies them by the study's own counts: images each
generator makes (its real dataset's training split, the CFG sweep included), images each DINO
run sees (epochs x its training set, per replicate seed), and RealTune's continuations.
``python -m synreal doctor`` prints the result; a study's header comment quotes it.
"""

from __future__ import annotations

import re
from pathlib import Path

from synreal.errors import DataError

#: Sampling steps of a generator that does not set them (GenerateParams' default).
DEFAULT_STEPS = 50
#: Which throughput row serves which generator backend (a substring of the row's model).
GENERATOR_MODELS = {"sdxl": "sdxl", "sd": "stable-diffusion-v1", "sd-image-variations":
                    "image-variations"}


def per_second(rows: list[dict], stage: str, model: str, steps: int | None = None) -> float:
    """Images per second of ``stage`` for the first row whose model contains ``model``.

    ``steps``: the study's sampling steps; a row measured at another step count (its setting
    says ``<n> steps``) is scaled linearly, as sampling time is.
    """
    for row in rows:
        if row.get("stage", "").lower() == stage and model in row.get("model", "").lower():
            value = float(row["throughput"].replace(",", ""))
            measured = re.search(r"(\d+) steps", row.get("setting", ""))
            scale = steps / int(measured.group(1)) if steps and measured else 1.0
            if row.get("unit", "").lower().replace(" ", "") in ("s/image", "s/img"):
                value *= scale
            else:
                value /= scale
            unit = row.get("unit", "").lower().replace(" ", "")
            if unit in ("images/s", "img/s", "image/s"):
                return value
            if unit in ("s/image", "s/img", "seconds/image"):
                return 1.0 / value
            raise DataError(f"docs/throughput.md: unit {row.get('unit')!r} of {stage} {model} "
                            "is neither images/s nor s/image.")
    raise DataError(f"docs/throughput.md has no {stage} row for a {model} model; add its "
                    "measured throughput with a source.")


def _training_images(config: dict, base: Path) -> dict[str, int]:
    from synreal.data.formats import scan
    from synreal.stages.generate import TRAINING_SPLITS

    counts = {}
    for name, dataset in config["datasets"].items():
        if "path" in dataset and (base / dataset["path"]).is_dir():
            records = scan(dataset["format"], base / dataset["path"])
            counts[name] = sum(r.split in TRAINING_SPLITS for r in records)
    return counts


def study_cost(config: dict, base: Path, rows: list[dict]) -> dict[str, tuple[float, str]]:
    """Stage -> (GPU-hours, how it was counted) for the study's GPU stages."""
    real = _training_images(config, base)
    if not real:
        raise DataError("no dataset folder found to count images from; run it where the "
                        "study's datasets are.")
    costs: dict[str, tuple[float, str]] = {}
    images, seconds = 0, 0.0
    sweep = config.get("cfg_sweep") or {}
    for name, generator in config["generators"].items():
        backend = str(generator.get("params", {}).get("backend", "sdxl"))
        if backend.startswith("toy"):
            continue
        count = real.get(generator["like"], 0)
        if name == sweep.get("generator"):  # the sweep's other scales too
            own = float(generator.get("params", {}).get("cfg_scale", 7.5))
            count *= len({float(x) for x in sweep.get("scales", [])} | {own})
        images += count
        steps = int(generator.get("params", {}).get("steps", DEFAULT_STEPS))
        seconds += count / per_second(rows, "generate", GENERATOR_MODELS.get(backend, backend),
                                      steps)
    if images:
        costs["generate"] = (seconds / 3600, f"{images} images")
    pretrain = config.get("pretrain") or {}
    if pretrain.get("runs"):
        costs["pretrain"] = _pretrain_cost(config, real, rows)
    return costs


def _pretrain_cost(config: dict, real: dict[str, int], rows: list[dict]) -> tuple[float, str]:
    """GPU-hours of every DINO run: each replicate seed, the sweep's scales, the controls.

    A run sees epochs x its real dataset's training images (the largest real set for a
    synthetic one, made to match it); a replicated run counts once per seed; the CFG sweep
    adds one run per scale other than its generator's own (that one is the synthetic run);
    the controls add a reference, a negative and a positive run on half the training split,
    once per seed of the run they copy.
    """
    from synreal.config import replicate_seeds
    from synreal.plan_jobs import replicated_runs

    pretrain = config["pretrain"]
    epochs = int(pretrain.get("params", {}).get("epochs", 100))
    arch = str(pretrain.get("params", {}).get("arch", "vit_small"))
    speed = per_second(rows, "pretrain", arch.split("_patch")[0])
    _, seeds, _ = replicate_seeds(config)
    replicated = replicated_runs(config)
    largest = max(real.values())
    per_run = {name: epochs * (real.get(run.get("real") or "", 0) or largest)
               for name, run in pretrain["runs"].items()}
    copies = {name: seeds if name in replicated else 1 for name in per_run}
    seen = sum(per_run[name] * copies[name] for name in per_run)
    jobs = sum(copies.values())
    sweep = config.get("cfg_sweep") or {}
    if sweep.get("scales"):
        generator = config["generators"].get(sweep.get("generator"), {})
        own = float(generator.get("params", {}).get("cfg_scale", 7.5))
        extra = len({float(x) for x in sweep["scales"]} - {own})
        seen += extra * epochs * largest
        jobs += extra
    controls = config.get("controls") or {}
    parts = 1 + bool(controls.get("negative")) + bool(controls.get("positive"))
    if parts > 1:
        run = controls.get("run", "real")
        seen += parts * copies[run] * per_run[run] / 2
        jobs += parts * copies[run]
    note = f"{jobs} runs x {epochs} epochs"
    if seeds > 1:
        note += f" ({seeds} seeds of {len(replicated)} runs"
        note += f", {parts} control runs at half size per seed)" if parts > 1 else ")"
    return seen / speed / 3600, note


#: Which throughput row (a substring of its model) serves each audit model; the detector's is
#: the one-pass row (object and person boxes from one OWLv2 forward), not the two-pass baseline.
AUDIT_MODELS = {"dinov2": "dinov2", "timm": "convnext", "clip": "clip", "inception":
                "inception", "owlvit": "one pass"}


def audit_models_used(config: dict) -> tuple[list[str], list[str]]:
    """(throughput-row models every audited image goes through, those a test image does).

    A dataset's images (and its real reference's non-test images) pass through the
    detector (one pass for object and person boxes), the consistency classifier and CLIP,
    the embedder and FID's Inception; the evaluation's test images only through the embedder,
    for the leak check.
    """
    audit = config["audit"]
    params, embedding = audit.get("params", {}), audit.get("embedding", {})
    models = []
    if "owlvit" in (params.get("scale_backend"), params.get("person_backend")):
        models.append(AUDIT_MODELS["owlvit"])
    if params.get("consistency_backend") == "timm":
        models.append(AUDIT_MODELS["timm"])
    if params.get("clip_weights"):
        models.append(AUDIT_MODELS["clip"])
    if params.get("fid_features") == "inception":
        models.append(AUDIT_MODELS["inception"])
    embedder = AUDIT_MODELS.get(str(embedding.get("embedder")))
    return models + ([embedder] if embedder else []), [embedder] if embedder else []


def audit_cost(config: dict, base: Path, rows: list[dict]) -> tuple[float, str, str]:
    """Hours of the study's audit jobs, from the audit rows of the throughput table.

    Returns:
        ``(hours, how it was counted, unit)``; the unit is ``CPU-h`` when the rows were
        measured on a CPU (bench/audit.py here, no GPU figure yet): an upper bound for the
        GPU the study asks for, kept out of the GPU total.
    """
    from synreal.data.formats import scan
    from synreal.plan import build_plan

    plan = build_plan(config)
    counts: dict[str, tuple[int, int]] = {}  # real dataset -> (all images, test images)
    for name, dataset in config["datasets"].items():
        if "path" in dataset and (base / dataset["path"]).is_dir():
            records = scan(dataset["format"], base / dataset["path"])
            counts[name] = (len(records), sum(r.split == "test" for r in records))
    if not counts:
        raise DataError("no dataset folder found to count the audited images from; run it "
                        "where the study's datasets are.")
    every, test_only = audit_models_used(config)
    per_image = sum(1 / per_second(rows, "audit", model) for model in every)
    per_test_image = sum(1 / per_second(rows, "audit", model) for model in test_only)
    seconds, images = 0.0, 0
    for job in plan.jobs.get("audit", {}).values():
        name, reference = job.params["name"], job.params["reference_name"]
        if name == reference:  # a real dataset, all its splits
            audited = counts.get(name, (0, 0))[0]
        else:  # a synthetic set made like its reference's training split, and that split
            total, test = counts.get(reference, (0, 0))
            audited = 2 * (total - test)
        tested = counts.get(config.get("evaluation", {}).get("dataset"), (0, 0))[1]
        seconds += audited * per_image + tested * per_test_image
        images += audited
    on_cpu = all(_row(rows, "audit", model).get("gpu", "").upper().startswith("CPU")
                 for model in every)
    how = (f"{len(plan.jobs.get('audit', {}))} audit jobs, {images} images through "
           f"{len(every)} models")
    if on_cpu:
        how += ("; at the CPU rates bench/audit.py measured (no GPU figure yet): an upper "
                "bound for a GPU, not in the GPU total")
    return seconds / 3600, how, "CPU-h" if on_cpu else "GPU-h"


def _row(rows: list[dict], stage: str, model: str) -> dict:
    return next(row for row in rows if row.get("stage", "").lower() == stage
                and model in row.get("model", "").lower())
