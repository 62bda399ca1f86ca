"""Stage ``control``: the main table's negative and positive control datasets.

Both come from one real dataset's training split, cut into two disjoint halves stratified by
class (a seeded permutation within each class; an odd class gives its extra image to half A):

* ``reference``: half A, the real images the controls are compared with;
* ``negative``: half B, held out from the reference: a "synthetic" set that is real data,
  so a pipeline that works must find no difference from the reference;
* ``positive``: half B with its class cues removed: each image replaced by smooth random
  colour noise of the same size, drawn independently of its class (a known, large defect
  the pipeline must detect).

Each writes ``manifest.parquet`` with the part's training rows (same ids, labels and split;
the positive part's images are new PNGs beside it). Test images are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synreal.errors import DataError
from synreal.params import doc, parse_params
from synreal.stages import Stage, register

if TYPE_CHECKING:  # planning imports this module: pandas loads when the stage runs
    import pandas as pd

PARTS = ("reference", "negative", "positive")
#: The splits pretraining reads (synreal.dino.sources.TRAINING_SPLITS).
TRAINING_SPLITS = ("train", "trainval")


@dataclass(frozen=True)
class ControlParams:
    """Parameters of the ``control`` stage."""

    part: str = doc("reference (half A), negative (held-out half B) or positive (half B as "
                    "class-independent noise).")
    seed: int = doc("Seed of the split into halves and of the noise images.", default=0)
    min_images: int = doc("Fewest images a half may have (one pretraining batch).", default=1)
    where: str = doc("Config key named in errors.", default="controls")


def split_halves(rows: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint halves of ``rows``, stratified by ``label``: (A, B), each sorted by id."""
    import pandas as pd

    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    first, second = [], []
    for _, group in rows.sort_values("id").groupby("label", sort=True):
        order = group.iloc[rng.permutation(len(group))]
        cut = (len(group) + 1) // 2
        first.append(order.iloc[:cut])
        second.append(order.iloc[cut:])
    return (pd.concat(first).sort_values("id").reset_index(drop=True),
            pd.concat(second).sort_values("id").reset_index(drop=True))


def noise_image(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random colour noise ``(height, width, 3)`` uint8: 4x4 random colours, bicubic."""
    from PIL import Image

    cells = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(cells).resize((width, height), Image.BICUBIC))


def run(spec: dict, out_dir: Path) -> None:
    """Write the part's manifest (and, for ``positive``, its noise images)."""
    from PIL import Image

    from synreal.data.manifest import (
        MANIFEST_FILE,
        RELATIVE_PATHS_KEY,
        read_manifest,
        write_manifest,
    )
    params = parse_params(ControlParams, spec["params"], "control params")
    if params.part not in PARTS:
        raise DataError(f"control part must be one of {list(PARTS)}, not {params.part!r}.")
    source = spec["inputs"]["manifest"]
    rows = read_manifest(Path(source))
    rows = rows[rows["split"].isin(TRAINING_SPLITS)]
    half_a, half_b = split_halves(rows, params.seed)
    smallest = min(len(half_a), len(half_b))
    if smallest < params.min_images or half_b["label"].nunique() < rows["label"].nunique():
        raise DataError(
            f"{params.where}: the training split of {source} has {len(rows)} images, so its "
            f"held-out half has {len(half_b)}, fewer than one batch of {params.min_images} "
            "(or a class without an image); use a larger dataset or a smaller batch_size.")
    part = half_a if params.part == "reference" else half_b.copy()
    metadata = {"synreal.control": params.part}
    if params.part == "positive":
        rng = np.random.default_rng(np.random.SeedSequence([params.seed, 13]))
        (out_dir / "images").mkdir()
        relpaths = []
        for row in part.itertuples():
            relpath = f"images/{len(relpaths):06d}.png"
            pixels = noise_image(int(row.width), int(row.height), rng)
            Image.fromarray(pixels).save(out_dir / relpath)
            relpaths.append(relpath)
        part["relpath"], part["path"] = relpaths, relpaths
        if "sha256" in part.columns:
            import hashlib

            part["sha256"] = [hashlib.sha256((out_dir / p).read_bytes()).hexdigest()
                              for p in relpaths]
        if "constant" in part.columns:
            part["constant"] = False
        metadata[RELATIVE_PATHS_KEY] = "true"
    write_manifest(part, out_dir / MANIFEST_FILE, metadata)
    print(f"control {params.part}: {len(part)} of {len(rows)} training images "
          f"(half A {len(half_a)}, half B {len(half_b)})")


STAGE = register(Stage("control", 1, "Negative/positive control datasets from a real dataset.",
                       ControlParams, run))
