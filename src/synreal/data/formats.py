"""Dataset adapters: list the images of a real dataset in its official on-disk layout.

Each adapter turns a dataset root into records ``(relpath, label, label_name, split)``;
:mod:`synreal.data.manifest` then decodes and hashes every image. Adapters only read
directory listings and annotation files, so they are cheap and run at ingest time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from synreal.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Record:
    """One image of a dataset before decoding."""

    relpath: str
    label: int
    label_name: str
    split: str


Adapter = Callable[[Path], list[Record]]
_ADAPTERS: dict[str, Adapter] = {}


def register(name: str) -> Callable[[Adapter], Adapter]:
    """Register a dataset adapter under ``name`` (the config's ``format`` value)."""

    def wrap(fn: Adapter) -> Adapter:
        _ADAPTERS[name] = fn
        return fn

    return wrap


def known_formats() -> list[str]:
    """Names accepted as a dataset ``format``."""
    return sorted(_ADAPTERS)


def scan(format_name: str, root: Path) -> list[Record]:
    """List ``root`` with the adapter for ``format_name``; errors name the path and the fix."""
    if format_name not in _ADAPTERS:
        raise DataError(f"unknown dataset format {format_name!r}; known: {known_formats()}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; download the dataset there "
                        "or fix its 'path' in the study config.")
    records = _ADAPTERS[format_name](root)
    if not records:
        raise DataError(f"dataset folder {root} holds no images in the {format_name!r} layout; "
                        f"check the folder or the dataset's 'format'.")
    return records


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(split_dir: Path) -> list[Path]:
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


@register("afhq")
def scan_afhq(root: Path) -> list[Record]:
    """AFHQ: ``<root>/train/<cat|dog|wild>/*`` and ``<root>/val/...`` (or ``test/``).

    The official release names its held-out split ``val``; it is reported as ``test``.
    """
    splits = [(name, "test" if name == "val" else name) for name in ("train", "val", "test")
              if (root / name).is_dir()]
    if not splits:
        raise DataError(f"{root} is not an AFHQ folder: expected {root}/train/<class>/ "
                        f"and {root}/val/<class>/ (or test/).")
    classes = sorted({c.name for folder, _ in splits for c in _class_folders(root / folder)})
    records = []
    for folder, split in splits:
        for class_dir in _class_folders(root / folder):
            label = classes.index(class_dir.name)
            records += [Record(str(p.relative_to(root)), label, class_dir.name, split)
                        for p in _images_in(class_dir)]
    return records


_PET_LINE = re.compile(r"^(?P<image>\S+)\s+(?P<class_id>\d+)\s+(?P<species>\d+)\s+(?P<breed>\d+)$")


def _pet_split(root: Path, split: str) -> list[tuple[str, int]]:
    path = root / "annotations" / f"{split}.txt"
    if not path.is_file():
        raise DataError(f"{path} is missing: an Oxford-IIIT Pet folder needs annotations/"
                        "trainval.txt and annotations/test.txt (from annotations.tar.gz).")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _PET_LINE.match(line.strip())
        if not match:
            raise DataError(f"{path}:{number} is not 'Image CLASS-ID SPECIES BREED-ID': {line!r}")
        entries.append((match["image"], int(match["class_id"])))
    return entries


@register("oxford_pet")
def scan_oxford_pet(root: Path) -> list[Record]:
    """Oxford-IIIT Pet: ``images/<Breed>_<n>.jpg`` and ``annotations/{trainval,test}.txt``.

    Labels are the official 1-based CLASS-IDs minus one; the breed name is the image name
    without its trailing ``_<n>``.
    """
    records = []
    for split in ("trainval", "test"):
        for image, class_id in _pet_split(root, split):
            breed = image.rsplit("_", 1)[0]
            records.append(Record(f"images/{image}.jpg", class_id - 1, breed, split))
    return records


@register("imagefolder")
def scan_imagefolder(root: Path) -> list[Record]:
    """Torchvision ImageFolder: ``<root>/<class>/*``, or ``<root>/<split>/<class>/*``.

    A top level made only of ``train``/``val``/``test``/``trainval`` folders is read as splits;
    otherwise every image is in split ``train``.
    """
    top = _class_folders(root)
    split_names = {"train", "val", "test", "trainval"}
    split_dirs = (
        [(d, d.name) for d in top]
        if top and all(d.name in split_names for d in top)
        else [(root, "train")]
    )
    classes = sorted({c.name for d, _ in split_dirs for c in _class_folders(d)})
    records = []
    for split_dir, split in split_dirs:
        for class_dir in _class_folders(split_dir):
            records += [Record(str(p.relative_to(root)), classes.index(class_dir.name),
                               class_dir.name, split) for p in _images_in(class_dir)]
    return records
