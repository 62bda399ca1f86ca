"""Fixtures: tiny random diffusers pipelines saved to disk once per session, a toy real set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from synreal.data.toyworld import ALL_BREEDS, WorldParams, image_rng, render
from synreal.data.toyworld_layouts import DATA_DIR, DRAWS_FILE


@pytest.fixture(scope="session")
def tiny_pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> folder of a saved tiny pipeline (sd, sdxl, sd-image-variations)."""
    from synreal.generate.tiny import TINY_KINDS, build_tiny_pipeline

    root = tmp_path_factory.mktemp("tiny-pipelines")
    return {kind: build_tiny_pipeline(kind, root / kind) for kind in TINY_KINDS}


def write_real_set(root: Path, per_class: int = 2, size: int = 40) -> pd.DataFrame:
    """A few toy-world 'real' images and their manifest rows (id, path, label, label_name).

    Laid out as the toyworld stage writes a dataset (images under ``data/``, their draws in
    ``draws.parquet``), so toy image variations can redraw them.
    """
    rows, draws = [], []
    for label, name in enumerate(("cat", "dog")):
        breed = next(b for b in ALL_BREEDS.values() if b.coarse == name)
        for i in range(per_class):
            image, draw = render(breed, size, image_rng(7, label, i), WorldParams())
            rel = Path("train") / name / f"{name}_{i:03d}.png"
            (root / DATA_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
            image.save(root / DATA_DIR / rel)
            rows.append({"id": str(rel.with_suffix("")), "path": str(root / DATA_DIR / rel),
                         "relpath": str(rel), "label": label, "label_name": name,
                         "split": "train"})
            draws.append({"relpath": rel.as_posix(), **draw.as_row()})
    pd.DataFrame(draws).to_parquet(root / DRAWS_FILE)
    return pd.DataFrame(rows)


@pytest.fixture
def real_set(tmp_path: Path) -> pd.DataFrame:
    """Manifest of a 2-class, 2-images-per-class toy 'real' dataset."""
    return write_real_set(tmp_path / "real")
