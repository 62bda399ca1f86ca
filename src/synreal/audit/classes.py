"""The audit's per-class table: detector phrases and ImageNet classes, as data.

``data/classes.json`` (documented in its ``_doc`` block) gives, for every class of the
datasets the audit knows (Oxford-IIIT Pet's 37 breeds, AFHQ's cat / dog / wild, the toy
world's wild species):

* ``phrases``: what the open-vocabulary detector is asked for the central object. Phrases
  name the animal: breeds are species-qualified ("a photo of a Bengal cat", "a photo of a
  Beagle dog") and AFHQ's ``wild`` is its animals (tiger, lion, leopard, cheetah, fox,
  wolf, ...), never the bare label ("a photo of a wild").
* ``imagenet``: ImageNet-1k indices an ImageNet classifier's softmax is summed over for the
  class (SynBench's ConvNeXt-B consistency); empty where ImageNet has no such class.

``formats`` lists the class names each dataset format ingests to, so a class without a
phrase or an ImageNet entry is caught before any job starts. ``class_table`` in the audit
params may name another file of this layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from synreal.errors import ConfigError

#: The packaged table.
DEFAULT_TABLE = Path(__file__).with_name("data") / "classes.json"


@lru_cache(maxsize=8)
def _read(path: str) -> dict:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"audit class_table {file} does not exist; set it to a JSON file laid "
                          f"out like {DEFAULT_TABLE.name} (or unset it for the packaged one).")
    try:
        table = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"audit class_table {file} is not valid JSON ({error}).") from None
    if not isinstance(table.get("classes"), dict):
        raise ConfigError(f"audit class_table {file} has no 'classes' mapping "
                          "{label_name: {phrases: [...], imagenet: [...]}}.")
    return table


def load_table(path: str | Path | None = None) -> dict:
    """The class table: ``path`` (audit ``class_table``) or the packaged one."""
    return _read(str(path or DEFAULT_TABLE))


def _entry(table: dict, name: str, what: str, source: str | Path | None) -> dict:
    entry = table["classes"].get(str(name))
    if entry is None or what not in entry:
        where = source or DEFAULT_TABLE
        raise ConfigError(f"audit class table {where} has no {what} for class {name!r}; add "
                          f"\"{name}\": {{\"{what}\": [...]}} to it, or set audit class_table to "
                          "a file that has.")
    return entry


def object_phrases(name: str, path: str | Path | None = None) -> list[str]:
    """The detector phrases of class ``name`` (at least one), or a ConfigError."""
    phrases = [str(p) for p in _entry(load_table(path), name, "phrases", path)["phrases"]]
    if not phrases:
        raise ConfigError(f"audit class table {path or DEFAULT_TABLE} lists no detector phrase "
                          f"for class {name!r}; add one that names the animal.")
    return phrases


def imagenet_groups(class_names: Sequence[str], path: str | Path | None = None
                    ) -> list[list[int]]:
    """ImageNet indices per class, in ``class_names`` order (an empty list: not covered)."""
    table = load_table(path)
    return [[int(i) for i in _entry(table, n, "imagenet", path)["imagenet"]]
            for n in class_names]


def format_classes(format_name: str, path: str | Path | None = None) -> list[str] | None:
    """The class names a dataset format ingests to, when the table knows the format."""
    known = load_table(path).get("formats", {}).get(format_name)
    return list(known) if known is not None else None
