"""Shared by the audit tests: toy-world datasets with known truth written as manifests, and
fixtures for offline tiny-model runs."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synreal.data.toyworld import ALL_BREEDS, BREEDS, WorldParams, breeds_of, image_rng, render

SIZE = 64


@pytest.fixture
def offline(monkeypatch):
    """As on a compute node: HF_HUB_OFFLINE set, and every socket connection refused and
    recorded (the list must stay empty)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError(f"the audit tried to reach {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts

#: The demo's biased generator: narrower scale and brightness, no occlusion.
NARROW = WorldParams(scale=(0.55, 0.75), brightness=(0.8, 1.15), occlusion_prob=0.0)
WIDE = WorldParams()


def toy_manifest(folder: Path, n_per_class: int, world: WorldParams, seed: int,
                 confusion: float = 0.0, breeds=BREEDS, split: str = "train") -> pd.DataFrame:
    """Render ``n_per_class`` images per breed; with ``confusion`` the drawn breed is swapped for
    another of its coarse class while the label keeps the prompted one."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [b.name for b in breeds]
    rows = []
    for label, breed in enumerate(breeds):
        for i in range(n_per_class):
            rng = image_rng(seed, label, i)
            drawn, confused = breed, False
            if rng.random() < confusion:
                others = [b for b in breeds_of(breed.coarse) if b.name != breed.name
                          and b.name in names]
                drawn, confused = others[int(rng.integers(len(others)))], True
            image, draw = render(ALL_BREEDS[drawn.name], SIZE, rng, world)
            path = folder / f"{breed.name}_{i:03d}.png"
            image.save(path, compress_level=1)
            rows.append({"id": f"{folder.name}/{path.stem}", "path": str(path),
                         "relpath": path.name, "label": label, "label_name": breed.name,
                         "split": split, "sha256": f"{seed}-{label}-{i}", "width": SIZE,
                         "height": SIZE, "bbox": list(draw.bbox),
                         "person_bbox": list(draw.person_bbox) if draw.person_bbox else None,
                         "true_scale": draw.scale, "true_brightness": draw.brightness,
                         "occluded": draw.occluded, "confused": confused,
                         "drawn": drawn.name})
    return pd.DataFrame(rows)


def crop_histograms(manifests) -> Callable:
    """A fixed embedding that separates breeds at fixed brightness: the colour histogram
    (4 bins per channel, square-rooted) of the object's rendered box."""
    from synreal.data.manifest import load_rgb

    boxes = {r.path: r.bbox for m in manifests for r in m.itertuples()}

    def embed(paths) -> np.ndarray:
        out = []
        for p in paths:
            x0, y0, x1, y1 = (int(round(v)) for v in boxes[p])
            crop = load_rgb(p)[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].reshape(-1, 3) // 64
            codes = crop[:, 0] * 16 + crop[:, 1] * 4 + crop[:, 2]
            out.append(np.sqrt(np.bincount(codes, minlength=64) / len(codes)))
        return np.asarray(out, dtype=np.float32)

    return embed


def pixel_features(paths) -> np.ndarray:
    """A fixed generic embedding: the image downsampled to 8 x 8 RGB, flattened."""
    from synreal.data.manifest import load_rgb

    return np.stack([load_rgb(p, size=8).astype(np.float32).ravel() / 255 for p in paths])


@pytest.fixture(scope="session")
def toy_sets(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Real (wide world) and synthetic (narrow, 30 % confusion) toy datasets, 12 breeds."""
    root = tmp_path_factory.mktemp("toy")
    return {
        "real": toy_manifest(root / "real", 16, WIDE, seed=1),
        "synthetic": toy_manifest(root / "synthetic", 8, NARROW, seed=2, confusion=0.3),
    }


@pytest.fixture(scope="session")
def cat_sets(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Cat breeds at fixed brightness: real, and synthetic with 30 % within-cat confusion."""
    root = tmp_path_factory.mktemp("cats")
    flat = WorldParams(brightness=(1.0, 1.0), occlusion_prob=0.0, clutter=(0, 2))
    cats = breeds_of("cat")
    return {
        "real": toy_manifest(root / "real", 20, flat, seed=3, breeds=cats),
        "synthetic": toy_manifest(root / "synthetic", 20, flat, seed=4, confusion=0.3,
                                  breeds=cats),
    }
