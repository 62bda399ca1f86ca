"""The generation plan: every image to make, in a fixed order, and its split into shards.

The plan is a pure function of the parameters (and, for image variations or matched class
counts, the real manifest): image ids, prompts and seeds never depend on batch size, shard
size, the number of processes or on what is already on disk. That is what makes a resumed
or multi-GPU run produce exactly the images a single uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass

import pandas as pd

from synreal.errors import ConfigError, DataError
from synreal.generate.params import GenerateParams
from synreal.generate.prompts import class_caption_prompts, class_prompts, prompt_set
from synreal.generate.seeds import image_seed

TEXT_BACKENDS = ("sd", "sdxl", "toy")


@dataclass(frozen=True)
class ImageJob:
    """One image to generate.

    Attributes:
        id: unique image id, ``<class folder>_<index within class, 6 digits>``.
        label: index of the class in the class list.
        label_name: class name.
        index: position of the image within its class (the seed stream).
        template: the prompt template used (None for image variations).
        prompt: the full prompt (None for image variations).
        seed: seed of the first attempt; blank images move on to later attempts.
        source_id: real image id (image variations only).
        source_path: real image file (image variations only).
        caption: caption of a real image in the prompt (captioned prompts only).
        caption_source_id: id of the real image that caption describes.
    """

    id: str
    label: int
    label_name: str
    index: int
    template: str | None
    prompt: str | None
    seed: int
    source_id: str | None = None
    source_path: str | None = None
    caption: str | None = None
    caption_source_id: str | None = None


def folder_name(class_name: str) -> str:
    """A file-system-safe folder name for a class (anything odd becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", class_name) or "_"


def classes_from_manifest(manifest: pd.DataFrame) -> tuple[str, ...]:
    """Class names of a real manifest in label order (labels must be 0..K-1 without gaps)."""
    pairs = manifest[["label", "label_name"]].drop_duplicates().sort_values("label")
    if pairs["label"].duplicated().any() or pairs["label_name"].duplicated().any():
        raise DataError("the real manifest maps a label to two names (or back); re-ingest it.")
    names = dict(zip(pairs["label"].astype(int), pairs["label_name"], strict=True))
    return tuple(names.get(i, f"class_{i}") for i in range(max(names) + 1))


def class_counts(params: GenerateParams, classes: tuple[str, ...],
                 manifest: pd.DataFrame | None) -> dict[str, int]:
    """Exact images per class: from ``per_class``, or matching the real manifest's counts."""
    if params.per_class is None:
        if manifest is None:
            raise ConfigError("generate per_class is null (match the real data) but no real "
                              "manifest was given; set per_class or pass source_manifest.")
        found = manifest["label_name"].value_counts()
        return {name: int(found.get(name, 0)) for name in classes}
    if isinstance(params.per_class, dict):
        unknown = sorted(set(params.per_class) - set(classes))
        if unknown:
            raise ConfigError(f"generate per_class names unknown class {unknown[0]!r}; "
                              f"classes: {list(classes)}.")
        return {name: int(params.per_class.get(name, 0)) for name in classes}
    return {name: int(params.per_class) for name in classes}


#: Backends that make one counterpart per real image (MixDiff pairs) instead of prompting.
VARIATION_BACKENDS = ("sd-image-variations", "toy-variations")


def build_plan(params: GenerateParams, manifest: pd.DataFrame | None = None,
               captions: pd.DataFrame | None = None) -> list[ImageJob]:
    """Every image of the dataset, class by class, in index order.

    Args:
        params: generation parameters.
        manifest: the real dataset's manifest (rows to use, e.g. its train split). Required
            by ``sd-image-variations`` (one counterpart per row); for text backends it fixes
            the class list, the labels and, with ``per_class: null``, the counts.
        captions: the real images' captions (:func:`synreal.generate.captions.ensure_captions`),
            required when ``params.captioner_path`` is set.
    """
    if params.backend in VARIATION_BACKENDS:
        return _variation_plan(params, manifest)
    classes = params.classes or (classes_from_manifest(manifest) if manifest is not None
                                 else None)
    if params.classes and manifest is not None:
        real = classes_from_manifest(manifest)
        if tuple(params.classes) != real:
            odd = sorted(set(params.classes) ^ set(real))
            how = f"differing: {odd}" if odd else "same names, another order"
            raise ConfigError(
                f"generate classes {list(params.classes)} do not match the real dataset's "
                f"classes {list(real)} in label order ({how}); remove 'classes' to use the "
                "real dataset's, or make the list match its folders.")
    prompts = prompt_set(params.dataset, classes, params.templates)
    counts = class_counts(params, prompts.classes, manifest)
    if params.captioner_path:
        return _caption_plan(params, prompts, counts, captions)
    jobs = []
    for label, name in enumerate(prompts.classes):
        texts = class_prompts(prompts, name, counts[name], params.seed, params.rare_scenarios)
        for i, (template, prompt) in enumerate(texts):
            jobs.append(ImageJob(f"{folder_name(name)}_{i:06d}", label, name, i, template,
                                 prompt, image_seed(params.seed, name, i)))
    return jobs


def _caption_plan(params: GenerateParams, prompts, counts: dict[str, int],
                  captions: pd.DataFrame | None) -> list[ImageJob]:
    """SynBench's "class name, caption" prompts, one real image's caption per image."""
    from synreal.generate.captions import class_captions

    if captions is None:
        raise ConfigError("generate captioner_path is set but no captions were given; "
                          "generate_dataset captions the real images first (or pass "
                          "captions=ensure_captions(...)).")
    by_class = class_captions(captions)
    jobs = []
    for label, name in enumerate(prompts.classes):
        texts = class_caption_prompts(prompts, name, counts[name], params.seed,
                                      by_class.get(name, []), params.caption_template,
                                      params.rare_scenarios)
        for i, (template, prompt, caption, source) in enumerate(texts):
            jobs.append(ImageJob(f"{folder_name(name)}_{i:06d}", label, name, i, template,
                                 prompt, image_seed(params.seed, name, i),
                                 caption=caption, caption_source_id=source))
    return jobs


def _variation_plan(params: GenerateParams, manifest: pd.DataFrame | None) -> list[ImageJob]:
    if manifest is None or manifest.empty:
        raise ConfigError(f"backend {params.backend} makes one counterpart per real image "
                          "and needs the real manifest (source_manifest).")
    missing = [c for c in ("id", "path", "label", "label_name") if c not in manifest.columns]
    if missing:
        raise DataError(f"the real manifest lacks columns {missing}; re-ingest the dataset.")
    jobs = []
    for (label, name), rows in manifest.sort_values("id").groupby(["label", "label_name"],
                                                                   sort=True):
        for i, row in enumerate(rows.itertuples(index=False)):
            jobs.append(ImageJob(f"{folder_name(name)}_{i:06d}", int(label), str(name), i,
                                 None, None, image_seed(params.seed, str(name), i),
                                 str(row.id), str(row.path)))
    return jobs


def shard_bounds(n_images: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard over the plan: fixed-size, the last one shorter."""
    return [(start, min(start + shard_size, n_images))
            for start in range(0, n_images, shard_size)]


def select_shards(n_shards: int, shard_range: tuple[int, int] | None = None, rank: int = 0,
                  world_size: int = 1) -> list[int]:
    """Shards this process makes: ``shard_range`` [start, stop), else every ``world_size``-th.

    Ranks ``0..world_size-1`` together cover every shard exactly once.
    """
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} must lie in [0, world_size={world_size}).")
    if shard_range is not None:
        start, stop = shard_range
        if not 0 <= start <= stop:
            raise ConfigError(f"shard range {shard_range} must satisfy 0 <= start <= stop.")
        return list(range(start, min(stop, n_shards)))
    return list(range(rank, n_shards, world_size))


#: Parameters that change speed only (images equal up to float rounding): a run resumed
#: with other values keeps its shards.
THROUGHPUT_KEYS = ("batch_size", "caption_batch_size", "channels_last", "torch_compile")


def plan_digest(params: GenerateParams, jobs: list[ImageJob]) -> str:
    """Hash of everything that decides the images: params (except throughput knobs) + jobs."""
    fixed = {k: v for k, v in asdict(params).items() if k not in THROUGHPUT_KEYS}
    payload = json.dumps({"params": fixed, "jobs": [asdict(j) for j in jobs]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
