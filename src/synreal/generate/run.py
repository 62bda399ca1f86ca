"""Entry point: generate a whole synthetic dataset (or this process's shards of it).

``generate_dataset`` captions the real images first when a captioner is set (cached in
``captions.parquet``), plans every image, makes the shards that are missing (or the ones
assigned to this process), and writes ``manifest.parquet`` once all shards exist. Rerunning
it after a crash or kill makes only the missing shards; running it with ``rank``/
``world_size`` (one process per GPU) or explicit ``shard_range`` splits the work without
overlap, and whichever process finishes last writes the manifest.

Example:
    >>> params = GenerateParams(backend="toy", per_class=8, image_size=32)  # doctest: +SKIP
    >>> manifest = generate_dataset(params, Path("out"))                    # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image
from tqdm import tqdm

from synreal.data.downscale import FILTER, downscale
from synreal.errors import ConfigError, DataError
from synreal.generate.blank import is_blank
from synreal.generate.params import GenerateParams
from synreal.generate.plan import (
    VARIATION_BACKENDS,
    ImageJob,
    build_plan,
    folder_name,
    plan_digest,
    select_shards,
    shard_bounds,
)
from synreal.generate.registry import Backend, Generated, create
from synreal.generate.seeds import image_seed
from synreal.generate.shards import (
    check_plan,
    collect,
    encode_image,
    is_complete,
    open_shard,
    read_shard,
)

MANIFEST_FILE = "manifest.parquet"

#: Columns every generated manifest starts with (those of a real manifest first).
BASE_COLUMNS = ("id", "path", "relpath", "label", "label_name", "split", "sha256", "width",
                "height", "mode", "constant", "prompt", "template", "caption",
                "caption_source_id", "negative_prompt", "seed",
                "regenerations", "cfg_scale", "steps", "scheduler", "model_id", "model_hash",
                "native_resolution", "resample", "source_id", "shard", "index")


def generate_dataset(params: GenerateParams, out_dir: Path, *,
                     source_manifest: pd.DataFrame | None = None,
                     shard_range: tuple[int, int] | None = None, rank: int = 0,
                     world_size: int = 1, device: str = "cpu",
                     progress: bool = True) -> pd.DataFrame:
    """Generate the missing shards this process owns; return the manifest.

    Args:
        params: every generation control.
        out_dir: output folder (persistent: shards already there are kept).
        source_manifest: real manifest rows (e.g. its train split): the images to vary for
            ``sd-image-variations``; the classes, labels and (``per_class: null``) counts to
            match for text backends.
        shard_range: ``(start, stop)`` shard numbers to make; overrides rank/world_size.
        rank, world_size: make shards ``rank, rank + world_size, ...``.
        device: ``cpu`` or ``cuda[:n]``.
        progress: show a tqdm bar (images/s).

    Returns:
        The full manifest (also written to ``out_dir/manifest.parquet``) once every shard
        exists; otherwise only the rows of this process's shards.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = plan_with_captions(params, out_dir, source_manifest, device)
    if not jobs:
        raise ConfigError("generate has nothing to make: every class count is 0.")
    bounds = shard_bounds(len(jobs), params.shard_size)
    check_plan(out_dir, plan_digest(params, jobs), len(jobs), len(bounds))
    mine = select_shards(len(bounds), shard_range, rank, world_size)
    todo = [k for k in mine if not is_complete(out_dir, k)]
    if todo:
        backend = create(params.backend, params, device)
        total = sum(bounds[k][1] - bounds[k][0] for k in todo)
        with tqdm(total=total, unit="img", desc=f"generate {params.backend}",
                  mininterval=2, disable=not progress) as bar:
            for shard in todo:
                start, stop = bounds[shard]
                make_shard(backend, params, out_dir, shard, jobs[start:stop], bar)
    if all(is_complete(out_dir, k) for k in range(len(bounds))):
        return finalize(out_dir, params, len(bounds), len(jobs))
    return _with_paths(pd.concat([read_shard(out_dir, k) for k in mine], ignore_index=True),
                       out_dir)


def plan_with_captions(params: GenerateParams, out_dir: Path,
                       source_manifest: pd.DataFrame | None, device: str = "cpu"
                       ) -> list[ImageJob]:
    """The plan; with a captioner, the real images are captioned (or read from cache) first."""
    captions = None
    if params.captioner_path and params.backend not in VARIATION_BACKENDS:
        from synreal.generate.captions import ensure_captions

        captions = ensure_captions(params, out_dir, source_manifest, device)
    return build_plan(params, source_manifest, captions)


def make_shard(backend: Backend, params: GenerateParams, out_dir: Path, shard: int,
               jobs: list[ImageJob], bar: tqdm | None = None) -> None:
    """Generate, resize, encode and write one shard's images, batch by batch."""
    shared = backend.describe()
    suffix = "jpg" if params.image_format == "jpg" else params.image_format
    with open_shard(out_dir, shard) as writer:
        for start in range(0, len(jobs), params.batch_size):
            batch = jobs[start:start + params.batch_size]
            for job, made, seed, retries in generate_unblank(backend, params, batch):
                image = resize(made.image, params.image_size)
                row = image_row(job, image, seed, retries, params, shared, made.extra)
                writer.add(folder_name(job.label_name), f"{job.id}.{suffix}",
                           encode_image(image, params.image_format), row)
            if bar is not None:
                bar.update(len(batch))


def generate_unblank(backend: Backend, params: GenerateParams, jobs: list[ImageJob]
                     ) -> list[tuple[ImageJob, Generated, int, int]]:
    """Generate ``jobs``; blank images are redone with their next seed (attempt + 1).

    Returns ``(job, generated, seed used, regenerations)`` in job order.
    """
    attempts = [0] * len(jobs)
    done: dict[int, tuple[Generated, int]] = {}
    pending = list(range(len(jobs)))
    while pending:
        seeds = [image_seed(params.seed, jobs[i].label_name, jobs[i].index, attempts[i])
                 for i in pending]
        made = backend.generate([jobs[i] for i in pending], seeds)
        retry = []
        for i, item, seed in zip(pending, made, seeds, strict=True):
            if not is_blank(item.image):
                done[i] = (item, seed)
                continue
            attempts[i] += 1
            if attempts[i] > params.max_regenerations:
                raise DataError(f"image {jobs[i].id} was blank {attempts[i]} times in a row "
                                f"(last seed {seed}); check the weights and dtype (an fp16 "
                                "VAE can overflow to black) or raise max_regenerations.")
            retry.append(i)
        pending = retry
    return [(jobs[i], done[i][0], done[i][1], attempts[i]) for i in range(len(jobs))]


def resize(image: Image.Image, size: int) -> Image.Image:
    """``size`` x ``size`` RGB by :func:`synreal.data.downscale.downscale`, as real images get."""
    return downscale(image, size)


def image_row(job: ImageJob, image: Image.Image, seed: int, retries: int,
              params: GenerateParams, shared: dict[str, Any], extra: dict[str, Any]) -> dict:
    """The manifest row of one image (without ``relpath``/``sha256``/``path``)."""
    text = job.prompt is not None
    return {
        "id": job.id, "label": job.label, "label_name": job.label_name, "split": "train",
        "width": image.width, "height": image.height, "mode": "RGB", "constant": False,
        "prompt": job.prompt, "template": job.template, "caption": job.caption,
        "caption_source_id": job.caption_source_id,
        "negative_prompt": params.negative_prompt if text else None,
        "seed": int(seed), "regenerations": int(retries), **shared,
        "resample": FILTER, "source_id": job.source_id, "index": job.index, **extra,
    }


def _with_paths(frame: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    root = Path(out_dir).resolve()
    frame = frame.assign(path=[str(root / rel) for rel in frame["relpath"]])
    first = [c for c in BASE_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def finalize(out_dir: Path, params: GenerateParams, n_shards: int, n_images: int
             ) -> pd.DataFrame:
    """Gather every shard into ``manifest.parquet`` (atomically); return the manifest."""
    from synreal.data.manifest import RELATIVE_PATHS_KEY, manifest_hash, write_manifest

    manifest = _with_paths(collect(out_dir, n_shards, n_images), out_dir)
    tmp = Path(out_dir) / f".{MANIFEST_FILE}.tmp-{os.getpid()}"
    write_manifest(manifest, tmp, {
        "synreal.manifest_hash": manifest_hash(manifest),
        "synreal.backend": params.backend,
        "synreal.model_id": params.model_id,
        "synreal.blank_regenerations": int(manifest["regenerations"].sum()),
        **_caption_metadata(params, out_dir),
        # images live inside the artifact, which is renamed when complete: readers resolve
        # `path` from `relpath` against the manifest's own folder
        RELATIVE_PATHS_KEY: "true",
    })
    os.replace(tmp, Path(out_dir) / MANIFEST_FILE)
    return manifest


def _caption_metadata(params: GenerateParams, out_dir: Path) -> dict[str, str]:
    """Manifest metadata naming the captions file and captioner (empty without one)."""
    from synreal.generate.captions import CAPTIONS_FILE

    if not (Path(out_dir) / CAPTIONS_FILE).is_file():
        return {}
    return {"synreal.captions": CAPTIONS_FILE, "synreal.captioner_id": params.captioner_id,
            "synreal.caption_template": params.caption_template}


def regenerate_image(params: GenerateParams, image_id: str, *, attempt: int = 0,
                     source_manifest: pd.DataFrame | None = None,
                     captions: pd.DataFrame | None = None,
                     device: str = "cpu") -> Image.Image:
    """Make one planned image alone (resized as saved); ``attempt`` = its regenerations.

    ``captions``: the dataset's ``captions.parquet`` when it was generated with a captioner.
    """
    jobs = {job.id: job for job in build_plan(params, source_manifest, captions)}
    if image_id not in jobs:
        raise DataError(f"image id {image_id!r} is not in this generation plan.")
    job = jobs[image_id]
    backend = create(params.backend, params, device)
    seed = image_seed(params.seed, job.label_name, job.index, attempt)
    return resize(backend.generate([job], [seed])[0].image, params.image_size)
