"""Stage ``toyworld``: render a toy-world dataset in the AFHQ or Oxford-IIIT Pet layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.errors import ConfigError
from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class ToyworldParams:
    """Parameters of the ``toyworld`` stage."""

    layout: str = doc("afhq (coarse cat/dog/wild) or oxford_pet (fine breeds).")
    per_class: dict = doc("split -> images per class, e.g. {train: 200, test: 40}.")
    image_size: int = doc("Image side in pixels.", default=64)
    scale: tuple = doc("(min, max) object width / image side.", default=(0.3, 0.95))
    brightness: tuple = doc("(min, max) brightness multiplier.", default=(0.35, 1.45))
    occlusion_prob: float = doc("Chance of a person-like occluder.", default=0.25)
    seed: int = doc("Seed of the whole dataset (each image has its own derived stream).",
                    default=0)


SPLITS = {"afhq": ("train", "test"), "oxford_pet": ("trainval", "test")}


def run(spec: dict, out_dir: Path) -> None:
    """Render the dataset into ``out_dir/data`` and its ground truth into ``draws.parquet``."""
    from synreal.data.toyworld import WorldParams
    from synreal.data.toyworld_layouts import write_toyworld

    params = parse_params(ToyworldParams, spec["params"], "toyworld params")
    if params.layout not in SPLITS:
        raise ConfigError(f"toyworld layout must be one of {sorted(SPLITS)}, not "
                          f"{params.layout!r}.")
    wanted = SPLITS[params.layout]
    per_class = {split: params.per_class[split] for split in wanted if split in params.per_class}
    if set(per_class) != set(wanted):
        raise ConfigError(f"a toyworld dataset in the {params.layout} layout needs counts for "
                          f"splits {list(wanted)}, got {sorted(params.per_class)}.")
    world = WorldParams(scale=tuple(params.scale), brightness=tuple(params.brightness),
                        occlusion_prob=params.occlusion_prob)
    write_toyworld(out_dir, params.layout, per_class, params.image_size, params.seed, world)


STAGE = register(Stage("toyworld", 3, "Render a toy-world dataset (demo stand-in for AFHQ/Pet).",
                       ToyworldParams, run))
