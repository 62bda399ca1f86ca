"""Write the toy world to disk in the official layouts of AFHQ and Oxford-IIIT Pet.

The real dataset adapters (:mod:`synreal.data.formats`) then read the toy world unchanged,
so the demo exercises the same ingest code as a full study.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tqdm import tqdm

from synreal.data.toyworld import (
    BREEDS,
    COARSE_CLASSES,
    WorldParams,
    breeds_of,
    image_rng,
    render,
)
from synreal.errors import DataError

#: A toyworld dataset folder: its images (in the AFHQ or Pet layout) and their draws.
DATA_DIR = "data"
DRAWS_FILE = "draws.parquet"

#: Oxford-IIIT Pet species codes in its annotation files.
PET_SPECIES = {"cat": 1, "dog": 2}


def pet_class_ids(breed_names: list[str]) -> dict[str, int]:
    """Oxford-IIIT Pet class ids: 1-based, alphabetical ignoring case (Abyssinian = 1)."""
    return {name: i + 1 for i, name in enumerate(sorted(breed_names, key=str.lower))}


def write_afhq_like(root: Path, per_class: dict[str, int], size: int, seed: int,
                    params: WorldParams) -> pd.DataFrame:
    """Render ``root/<split>/<cat|dog|wild>/*.png`` (AFHQ layout); return the draws.

    Args:
        per_class: split name (``train``, ``test``) -> images per coarse class.
    """
    rows = []
    jobs = [(split, coarse, i) for split, n in per_class.items()
            for coarse in COARSE_CLASSES for i in range(n)]
    for split, coarse, i in tqdm(jobs, desc="toyworld afhq", unit="img", mininterval=2):
        split_id = list(per_class).index(split)
        rng = image_rng(seed, 0, split_id, COARSE_CLASSES.index(coarse), i)
        members = breeds_of(coarse)
        breed = members[int(rng.integers(len(members)))]
        image, draw = render(breed, size, rng, params)
        rel = Path(split) / coarse / f"{coarse}_{split}_{i:05d}.png"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / rel)
        rows.append({"relpath": rel.as_posix(), "split": split, **draw.as_row()})
    return pd.DataFrame(rows)


def write_pet_like(root: Path, per_class: dict[str, int], size: int, seed: int,
                   params: WorldParams) -> pd.DataFrame:
    """Render ``root/images/<Breed>_<n>.jpg`` plus ``annotations/{list,trainval,test}.txt``.

    The annotation lines follow the official format ``Image CLASS-ID SPECIES BREED-ID``.

    Args:
        per_class: split name (``trainval``, ``test``) -> images per breed.
    """
    class_ids = pet_class_ids([b.name for b in BREEDS])
    breed_ids = {}
    for species in PET_SPECIES:
        names = sorted((b.name for b in BREEDS if b.coarse == species), key=str.lower)
        breed_ids.update({name: i + 1 for i, name in enumerate(names)})
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {split: [] for split in per_class}
    rows = []
    jobs = [(split, breed, i) for split, n in per_class.items() for breed in BREEDS
            for i in range(n)]
    counters = {b.name: 0 for b in BREEDS}
    for split, breed, i in tqdm(jobs, desc="toyworld pet", unit="img", mininterval=2):
        split_id = list(per_class).index(split)
        rng = image_rng(seed, 1, split_id, class_ids[breed.name], i)
        image, draw = render(breed, size, rng, params)
        counters[breed.name] += 1
        stem = f"{breed.name}_{counters[breed.name]}"
        image.save(root / "images" / f"{stem}.jpg", quality=95)
        line = (f"{stem} {class_ids[breed.name]} {PET_SPECIES[breed.coarse]} "
                f"{breed_ids[breed.name]}")
        lines[split].append(line)
        rows.append({"relpath": f"images/{stem}.jpg", "split": split, **draw.as_row()})
    for split, split_lines in lines.items():
        (root / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    header = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids",
              "#SPECIES: 1:Cat 2:Dog", "#BREED ID: 1-25:Cat 1:12:Dog",
              "#All images with 1st letter as captial are cat images",
              "#images with small first letter are dog images"]
    every = sorted(line for split_lines in lines.values() for line in split_lines)
    (root / "annotations" / "list.txt").write_text("\n".join(header + every) + "\n")
    return pd.DataFrame(rows)


def write_toyworld(root: Path, layout: str, per_class: dict[str, int], size: int, seed: int,
                   params: WorldParams) -> pd.DataFrame:
    """Write a toyworld dataset folder and return its draws.

    The ``layout`` (afhq or oxford_pet) images go under :data:`DATA_DIR`, their draws into
    :data:`DRAWS_FILE`: the folder :class:`SourceDraws` reads.
    """
    writer = write_afhq_like if layout == "afhq" else write_pet_like
    draws = writer(Path(root) / DATA_DIR, per_class, size, seed, params)
    draws.to_parquet(Path(root) / DRAWS_FILE, index=False)
    return draws


class SourceDraws:
    """The recorded draw of a toy-world image, found from the image's own path.

    A toyworld dataset folder holds its images under :data:`DATA_DIR` and every image's draw
    in :data:`DRAWS_FILE` beside it, keyed by the image's path relative to :data:`DATA_DIR`.
    Each dataset's table is read once.
    """

    def __init__(self) -> None:
        self._tables: dict[Path, dict[str, dict]] = {}

    def __call__(self, image_path: str | Path) -> dict:
        """The draw row of ``image_path``; a DataError when it is not a toy-world image."""
        path = Path(image_path).absolute()
        for folder in path.parents:
            if folder.name == DATA_DIR and (folder.parent / DRAWS_FILE).is_file():
                table = self._table(folder.parent)
                relpath = path.relative_to(folder).as_posix()
                if relpath not in table:
                    raise DataError(f"{path} is not recorded in {folder.parent / DRAWS_FILE}: "
                                    "the real manifest comes from another render of that "
                                    "dataset. Rerun snakemake, which re-ingests it, or "
                                    "delete that folder to re-render it.")
                return table[relpath]
        raise DataError(f"{path} is not a toy-world image (no {DATA_DIR}/ folder with a "
                        f"{DRAWS_FILE} beside it above it). Toy image variations redraw a "
                        "toy-world scene; for photographs use backend sd-image-variations.")

    def _table(self, dataset: Path) -> dict[str, dict]:
        if dataset not in self._tables:
            draws = pd.read_parquet(dataset / DRAWS_FILE)
            if "background_top" not in draws.columns:
                raise DataError(f"{dataset / DRAWS_FILE} predates recorded backgrounds: "
                                "rerun snakemake (toyworld stage version 2 re-renders it) "
                                f"or delete {dataset} to re-render it.")
            self._tables[dataset] = {row["relpath"]: row
                                     for row in draws.to_dict(orient="records")}
        return self._tables[dataset]
