"""Bad images in a real dataset folder: converted, skipped with a report line, or a clear failure.

Ingest decodes every file once. Wrong-mode images (CMYK, 16-bit, grayscale, RGBA) are kept
and converted to RGB exactly as every later stage reads them; an all-black image is kept and
flagged ``constant`` (audits count it; the log names it); corrupt, truncated and zero-byte
files are skipped with one report line each (``on_corrupt: skip``) or stop ingest with a
sentence naming the file (``on_corrupt: fail``). Nothing ingest kept can crash a DataLoader
worker later, and a file damaged after ingest fails with its name, not a PIL traceback.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from synreal.data.formats import scan
from synreal.data.manifest import build_manifest, load_rgb
from synreal.errors import DataError

from .conftest import snakemake, unfinished_leftovers

KEPT = {"ok.png": "RGB", "cmyk.jpg": "CMYK", "deep16.png": "I;16", "gray.png": "L",
        "rgba.png": "RGBA", "black.png": "RGB"}
SKIPPED = {"corrupt.jpg": "not an image", "truncated.png": "truncated",
           "truncated.jpg": "Truncated", "empty.png": "zero-byte"}


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    """An ImageFolder with one good image and one of every kind of bad one, per split."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for split in ("train", "test"):
        folder = root / split / "cat"
        folder.mkdir(parents=True)
        noise = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
        (folder / "ok.png").write_bytes(_png(noise))
        Image.fromarray(noise).convert("CMYK").save(folder / "cmyk.jpg")
        deep = rng.integers(0, 4096, (24, 24)).astype(np.uint16)  # 12-bit data in 16 bits
        Image.fromarray(deep).save(folder / "deep16.png")
        (folder / "gray.png").write_bytes(_png(noise, "L"))
        (folder / "rgba.png").write_bytes(_png(noise, "RGBA"))
        (folder / "black.png").write_bytes(_png(np.zeros((24, 24, 3), np.uint8)))
        (folder / "corrupt.jpg").write_bytes(b"this is not a JPEG" * 20)
        whole = _png(noise)
        (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
        jpeg = io.BytesIO()
        Image.fromarray(noise).save(jpeg, format="JPEG")
        (folder / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
        (folder / "empty.png").write_bytes(b"")
        (root / split / "dog").mkdir()
        (root / split / "dog" / "ok.png").write_bytes(_png(noise[::-1]))
    return root


def test_wrong_modes_are_converted_and_bad_files_skipped_with_a_reason(bad_folder):
    manifest, problems = build_manifest(bad_folder, scan("imagefolder", bad_folder), "skip")
    cats = manifest[manifest["label_name"] == "cat"]
    assert dict(zip(cats["relpath"].map(lambda p: Path(p).name), cats["mode"], strict=True)) \
        == {**KEPT}
    assert list(cats.loc[cats["constant"], "relpath"].map(lambda p: Path(p).name)) \
        == ["black.png", "black.png"]
    assert len(problems) == 2 * len(SKIPPED)
    for row in problems.itertuples():
        assert SKIPPED[Path(row.relpath).name] in row.reason
        assert "0x" not in row.reason, "reasons must be reproducible (no object addresses)"
    for path in manifest["path"]:
        rgb = load_rgb(path)
        assert rgb.dtype == np.uint8 and rgb.shape == (24, 24, 3)
    deep = load_rgb(cats.loc[cats["mode"] == "I;16", "path"].iloc[0])
    assert 0 < deep.mean() < 255 and deep.std() > 10, "16-bit data scaled, not saturated"


def test_fail_policy_names_the_file_and_the_fix(bad_folder):
    with pytest.raises(DataError, match=r"data/test/cat/corrupt\.jpg: cannot decode.*"
                                        r"on_corrupt: skip"):
        build_manifest(bad_folder, scan("imagefolder", bad_folder), "fail")


def test_kept_images_never_crash_a_dataloader_worker(bad_folder):
    """Every kept image goes through DINO's multi-crop in two DataLoader worker processes."""
    import torch

    from synreal.dino.augment import MultiCrop, ViewPlan
    from synreal.dino.train import CropDataset

    manifest, _ = build_manifest(bad_folder, scan("imagefolder", bad_folder), "skip")
    dataset = CropDataset([(p,) for p in manifest["path"]],
                          MultiCrop(16, 8, (0.4, 1.0), (0.05, 0.4), ViewPlan.single(2)), seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2,
                                         collate_fn=lambda items: items)
    assert sum(len(batch) for batch in loader) == len(manifest)


def test_an_image_damaged_after_ingest_is_named(bad_folder):
    manifest, _ = build_manifest(bad_folder, scan("imagefolder", bad_folder), "skip")
    victim = Path(manifest["path"].iloc[0])
    victim.write_bytes(victim.read_bytes()[:40])
    with pytest.raises(DataError, match=rf"{victim.name}: cannot decode.*rerun ingest"):
        load_rgb(victim)


def _study(tmp_path: Path, on_corrupt: str) -> Path:
    config = {"study": {"name": "bad images"}, "tables": ["datasets"],
              "datasets": {"real": {"format": "imagefolder", "path": "data",
                                    "on_corrupt": on_corrupt}}}
    path = tmp_path / f"{on_corrupt}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_pipeline_skips_with_a_report_line_per_file(bad_folder, tmp_path):
    proc = snakemake(tmp_path, "--cores", "1", "table_datasets", config=_study(tmp_path, "skip"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    [artifact] = (tmp_path / "results" / "ingest").glob("*/spec.json")
    problems = pd.read_csv(artifact.parent / "problems.csv")
    assert sorted(problems["relpath"]) == sorted(f"{split}/cat/{name}" for name in SKIPPED
                                                 for split in ("train", "test"))
    log = next((tmp_path / "results" / "logs" / "ingest").glob("*.log")).read_text()
    for relpath in problems["relpath"]:
        assert f"skipped data/{relpath}: " in log  # the dataset path as configured
    assert log.count("constant image") == 2
    table = pd.read_csv(tmp_path / "results" / "tables" / "datasets.csv")
    assert list(table["images"]) == [2 * (len(KEPT) + 1)]


@pytest.mark.slow
def test_pipeline_fail_policy_stops_with_one_sentence(bad_folder, tmp_path):
    proc = snakemake(tmp_path, "--cores", "1", "table_datasets", config=_study(tmp_path, "fail"))
    assert proc.returncode != 0
    log = next((tmp_path / "results" / "logs" / "ingest").glob("*.log")).read_text()
    errors = re.findall(r"synreal ingest: error: .*", log)
    assert len(errors) == 1 and "corrupt.jpg" in errors[0] and "on_corrupt: skip" in errors[0]
    assert "Traceback" not in log + proc.stderr
    assert not list((tmp_path / "results" / "ingest").glob("*/spec.json"))
    assert unfinished_leftovers(tmp_path / "results") == []
