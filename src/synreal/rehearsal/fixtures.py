"""What a rehearsal runs on: small datasets in official layouts and tiny random weights.

Every dataset path of the study gets a small dataset in its format's official on-disk layout,
with the quirks of the real downloads, rendered from the toy world:

- **AFHQ** (``train/`` and ``val/`` of ``cat``, ``dog``, ``wild``): 512 px JPEGs named like
  the release's (``flickr_cat_000002.jpg``, ``pixabay_dog_000114.jpg``).
- **Oxford-IIIT Pet** (``images/`` and ``annotations/``): JPEGs of assorted sizes named
  ``<Breed>_<n>.jpg``, ``list.txt`` with its comment header, ``trainval.txt``/``test.txt``,
  ``trimaps/`` and ``xmls/``; plus the release's oddities: ``.mat`` files inside
  ``images/``, a PNG and a GIF saved under ``.jpg`` names, a CMYK and a grayscale JPEG, and a
  truncated JPEG that ingest must skip (``on_corrupt: skip``) and report.

Every weights folder of the study gets tiny random weights of the model class it names,
saved the way the real download is (``save_pretrained`` folders, timm safetensors), so the
production loaders read them unchanged.

Each folder is written once (a stamp records what made it); a second call costs nothing, so
every Slurm job can run the check again when it re-reads the Snakefile.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from synreal.errors import ConfigError

#: Version of what this module writes; a change re-writes every rehearsal's fixtures.
VERSION = 3
STAMP = ".synreal-rehearsal.json"

#: AFHQ fixture: images per class and split (the release: ~5k train, 500 val per class).
#: 6 training images: 3 DINO steps of the rehearsal's batch of 2, and control halves and
#: RealTune's half share of 3 images, each still a batch. A DINO run's steps cost in
#: proportion to the images it sees: pretraining is the rehearsal's largest cost.
AFHQ_PER_CLASS = {"train": 2, "val": 2}
#: Pet fixture: images per breed and split (the release: ~100 trainval, ~100 test per breed).
#: Every rehearsal checkpoint's features pass all of them through ViT-S/16 at 224 px; two
#: test images a breed, so that each retrieval query has a match among the other queries.
PET_PER_BREED = {"trainval": 3, "test": 2}


def _stamped(folder: Path, what: dict) -> bool:
    stamp = folder / STAMP
    return stamp.is_file() and json.loads(stamp.read_text()) == what


def _write_once(folder: Path, what: dict, write: Callable[[Path], None]) -> None:
    """Write ``folder`` with ``write`` unless its stamp says it holds ``what`` already."""
    if _stamped(folder, what):
        return
    tmp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    (tmp / STAMP).write_text(json.dumps(what, sort_keys=True))
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _write_file_once(path: Path, what: dict, write: Callable[[Path], None]) -> None:
    """:func:`_write_once` for a weights file: the stamp lies beside it (``.<name>`` + stamp)."""
    stamp = path.with_name(f".{path.name}{STAMP}")
    try:
        if path.is_file() and json.loads(stamp.read_text()) == what:
            return
    except (OSError, ValueError):
        pass
    tmp = path.with_name(f".{path.name}.partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.unlink(missing_ok=True)
    write(tmp)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    tmp.replace(path)
    stamp.write_text(json.dumps(what, sort_keys=True))


def _world():
    """The toy world's natural variation (the demo's defaults), people in front included."""
    from synreal.data.toyworld import WorldParams

    return WorldParams(scale=(0.3, 0.95), brightness=(0.35, 1.45), occlusion_prob=0.25)


def write_afhq(root: Path, seed: int = 0) -> None:
    """An AFHQ folder: ``{train,val}/{cat,dog,wild}/<source>_<class>_<id>.jpg``, 512 px."""
    from synreal.data.toyworld import COARSE_CLASSES, breeds_of, image_rng, render

    params = _world()
    for split_id, (split, count) in enumerate(AFHQ_PER_CLASS.items()):
        for class_id, coarse in enumerate(COARSE_CLASSES):
            folder = root / split / coarse
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = image_rng(seed, 7, split_id, class_id, i)
                members = breeds_of(coarse)
                image, _ = render(members[int(rng.integers(len(members)))], 512, rng, params)
                source = "flickr" if i % 3 else "pixabay"
                number = 2 + 37 * i + 1000 * split_id
                image.save(folder / f"{source}_{coarse}_{number:06d}.jpg", quality=92)


def _pet_ids() -> tuple[dict[str, int], dict[str, int]]:
    from synreal.data.toyworld import BREEDS
    from synreal.data.toyworld_layouts import pet_class_ids

    class_ids = pet_class_ids([b.name for b in BREEDS])
    breed_ids: dict[str, int] = {}
    for species in ("cat", "dog"):
        names = sorted((b.name for b in BREEDS if b.coarse == species), key=str.lower)
        breed_ids.update({name: i + 1 for i, name in enumerate(names)})
    return class_ids, breed_ids


def _save_pet_image(image: Image.Image, path: Path, quirk: str | None) -> None:
    if quirk == "png":  # a PNG under a .jpg name
        image.save(path, format="PNG")
    elif quirk == "gif":
        image.convert("P").save(path, format="GIF")
    elif quirk == "cmyk":
        image.convert("CMYK").save(path, format="JPEG", quality=90)
    elif quirk == "gray":
        image.convert("L").save(path, format="JPEG", quality=90)
    elif quirk == "truncated":
        image.save(path, format="JPEG", quality=90)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        image.save(path, format="JPEG", quality=90)


#: Pet images given a quirk of the release: (breed index, image number) -> quirk.
PET_QUIRKS = {(0, 2): "png", (3, 1): "cmyk", (6, 2): "gray", (8, 1): "gif", (10, 3): "truncated"}
#: Sizes of the Pet images, cycled (the release's images are of every size and aspect).
PET_SIZES = ((500, 375), (375, 500), (333, 500), (500, 333), (400, 400))


def write_oxford_pet(root: Path, seed: int = 0) -> None:
    """An Oxford-IIIT Pet folder (``images/``, ``annotations/``) with the release's quirks."""
    from synreal.data.toyworld import BREEDS, image_rng, render
    from synreal.data.toyworld_layouts import PET_SPECIES

    params = _world()
    class_ids, breed_ids = _pet_ids()
    images, annotations = root / "images", root / "annotations"
    for folder in (images, annotations / "trimaps", annotations / "xmls"):
        folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {split: [] for split in PET_PER_BREED}
    for b, breed in enumerate(BREEDS):
        number = 0
        for split_id, (split, count) in enumerate(PET_PER_BREED.items()):
            for i in range(count):
                number += 1
                rng = image_rng(seed, 8, split_id, b, i)
                image, _ = render(breed, 400, rng, params)
                image = image.resize(PET_SIZES[(b + number) % len(PET_SIZES)], Image.BICUBIC)
                stem = f"{breed.name}_{number}"
                _save_pet_image(image, images / f"{stem}.jpg", PET_QUIRKS.get((b, number)))
                mask = np.full(image.size[::-1], 2, dtype=np.uint8)  # trimap: 2 = background
                Image.fromarray(mask).save(annotations / "trimaps" / f"{stem}.png")
                lines[split].append(f"{stem} {class_ids[breed.name]} "
                                    f"{PET_SPECIES[breed.coarse]} {breed_ids[breed.name]}")
    for k in range(3):  # the release ships three MATLAB files among its images
        (images / f"{BREEDS[0].name}_{100 + k}.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    for split, split_lines in lines.items():
        (annotations / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    header = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids",
              "#SPECIES: 1:Cat 2:Dog", "#BREED ID: 1-25:Cat 1:12:Dog",
              "#All images with 1st letter as captial are cat images",
              "#images with small first letter are dog images"]
    every = sorted(line for split_lines in lines.values() for line in split_lines)
    (annotations / "list.txt").write_text("\n".join(header + every) + "\n")


DATA_WRITERS: dict[str, Callable[[Path, int], None]] = {
    "afhq": write_afhq, "oxford_pet": write_oxford_pet,
}


def prepare_datasets(config: dict, workdir: Path) -> list[Path]:
    """Write every path-based dataset of the study under ``workdir``; return their folders."""
    written = []
    for name, dataset in config["datasets"].items():
        if "path" not in dataset:
            continue
        writer = DATA_WRITERS.get(dataset["format"])
        if writer is None:
            raise ConfigError(f"datasets.{name}.format: the rehearsal has no fixture for "
                              f"{dataset['format']!r} (it has {sorted(DATA_WRITERS)}).")
        folder = workdir / dataset["path"]
        what = {"version": VERSION, "format": dataset["format"], "seed": 0,
                "counts": AFHQ_PER_CLASS if dataset["format"] == "afhq" else PET_PER_BREED}
        _write_once(folder, what, lambda tmp, w=writer: w(tmp, 0))
        written.append(folder)
    return written


def _generator_kind(params: dict, key: str) -> str:
    from synreal.generate.loading import tiny_kind

    return tiny_kind(key, params)


def weight_folders(config: dict) -> dict[str, tuple[str, str]]:
    """Study weights path -> (what builds it, where the study names it)."""
    wanted: dict[str, tuple[str, str]] = {}
    for name, generator in config.get("generators", {}).items():
        params = generator.get("params") or {}
        from synreal.generate.loading import WEIGHT_KEYS

        for key in WEIGHT_KEYS:
            if params.get(key):
                wanted[params[key]] = (f"pipeline:{_generator_kind(params, key)}",
                                       f"generators.{name}.params.{key}")
    audit = config.get("audit") or {}
    for key, value in (audit.get("params") or {}).items():
        if key.endswith("_weights") and value:
            wanted.setdefault(value, (f"audit:{key}", f"audit.params.{key}"))
    embedder = (audit.get("embedding") or {}).get("embedder_weights")
    if embedder:
        wanted.setdefault(embedder, ("audit:embedder_weights",
                                     "audit.embedding.embedder_weights"))
    return wanted


def _build_audit(key: str, params: dict, path: Path) -> None:
    """The tiny random model of audit key ``key`` at ``path`` (a folder, or a file key's file)."""
    from synreal.audit import tiny

    tiny.build_rehearsal_audit_model(key, params, path)


def _audit_params(config: dict) -> dict:
    """audit.params with the embedder's name: what picks each tiny audit model."""
    audit = config.get("audit") or {}
    return {**(audit.get("params") or {}),
            "embedder": (audit.get("embedding") or {}).get("embedder", "colour-layout")}


def prepare_weights(config: dict, workdir: Path) -> list[Path]:
    """Write tiny random weights into every weights folder the study names."""
    from synreal.audit.tiny import REHEARSAL_FILES
    from synreal.generate.tiny import build_tiny_pipeline

    audit = _audit_params(config)
    written = []
    for path, (builder, where) in weight_folders(config).items():
        folder = workdir / path
        what = {"version": VERSION, "builder": builder}
        kind, _, name = builder.partition(":")
        if kind == "pipeline":
            def write(tmp, name=name, where=where):
                try:
                    build_tiny_pipeline(name, tmp)
                except ValueError as error:
                    raise ConfigError(f"{where}: {error}") from None
        elif name in REHEARSAL_FILES:  # a weights file, e.g. the FID Inception-v3's
            _write_file_once(folder, what, lambda tmp, name=name: _build_audit(name, audit, tmp))
            written.append(folder)
            continue
        else:
            def write(tmp, name=name):
                _build_audit(name, audit, tmp)
        _write_once(folder, what, write)
        written.append(folder)
    return written


def fixtures_digest(config: dict) -> str:
    """A short hash of what the fixtures depend on (for messages and tests)."""
    wanted = {"version": VERSION, "datasets": config["datasets"],
              "weights": sorted(weight_folders(config))}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:12]


def prepare(config: dict, workdir: Path) -> None:
    """Every dataset and weights folder the study names, written under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_datasets(config, workdir)
    prepare_weights(config, workdir)
