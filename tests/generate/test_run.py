import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synreal.data.manifest import MANIFEST_COLUMNS
from synreal.errors import ConfigError, DataError
from synreal.generate import GenerateParams, generate_dataset, regenerate_image
from synreal.generate.run import BASE_COLUMNS
from synreal.generate.seeds import image_seed
from synreal.generate.shards import SHARDS_DIR, is_complete
from synreal.generate.toy_backend import ToyBackend

PARAMS = GenerateParams(backend="toy", per_class={"cat": 5, "dog": 4, "wild": 3}, image_size=24,
                        shard_size=4, batch_size=3)


def test_manifest_schema_and_files(tmp_path):
    manifest = generate_dataset(PARAMS, tmp_path, progress=False)
    on_disk = pd.read_parquet(tmp_path / "manifest.parquet")
    pd.testing.assert_frame_equal(manifest, on_disk)
    assert set(MANIFEST_COLUMNS) <= set(manifest.columns)
    assert list(manifest.columns[:len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    assert len(manifest) == 12 and manifest["id"].is_unique
    assert (manifest["split"] == "train").all()
    assert manifest.groupby("label_name").size().to_dict() == {"cat": 5, "dog": 4, "wild": 3}
    assert manifest.groupby("label_name")["label"].first().to_dict() == {"cat": 0, "dog": 1,
                                                                         "wild": 2}
    for row in manifest.itertuples():
        data = Path(row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert Path(row.path) == (tmp_path / row.relpath).resolve()
        assert Path(row.relpath).parent.name == row.label_name  # ImageFolder-like
        with Image.open(row.path) as image:
            assert image.size == (row.width, row.height) == (24, 24)
        assert row.seed == image_seed(PARAMS.seed, row.label_name, row.index)
    for column in ("prompt", "negative_prompt", "cfg_scale", "steps", "scheduler", "model_id",
                   "model_hash", "native_resolution", "resample", "source_id", "regenerations",
                   "breed", "scale", "brightness", "occluded", "confused"):
        assert column in manifest.columns
    assert manifest["source_id"].isna().all()


def test_same_seed_same_images_other_seed_other_images(tmp_path):
    first = generate_dataset(PARAMS, tmp_path / "a", progress=False)
    again = generate_dataset(PARAMS, tmp_path / "b", progress=False)
    other = generate_dataset(GenerateParams(**{**PARAMS.__dict__, "seed": 1}), tmp_path / "c",
                             progress=False)
    assert first["sha256"].tolist() == again["sha256"].tolist()
    assert len(set(first["sha256"]) & set(other["sha256"])) == 0


def test_batch_size_does_not_change_images(tmp_path):
    one = generate_dataset(GenerateParams(**{**PARAMS.__dict__, "batch_size": 1}),
                           tmp_path / "a", progress=False)
    assert one["sha256"].tolist() == generate_dataset(PARAMS, tmp_path / "b",
                                                      progress=False)["sha256"].tolist()


def test_any_image_can_be_regenerated_alone(tmp_path):
    manifest = generate_dataset(PARAMS, tmp_path, progress=False)
    row = manifest.iloc[7]
    image = regenerate_image(PARAMS, row["id"])
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(row["path"]).convert("RGB")))


class Interrupt(BaseException):
    """Stands in for a kill arriving in the middle of a shard."""


def test_resume_after_interrupt_mid_shard_makes_only_missing_shards(tmp_path, monkeypatch):
    original = ToyBackend.generate
    calls: list[str] = []

    def crashing(self, jobs, seeds):
        if len(calls) >= 6:  # shard 0 (4 images) done, 2 images into shard 1
            raise Interrupt
        calls.extend(j.id for j in jobs)
        return original(self, jobs, seeds)

    monkeypatch.setattr(ToyBackend, "generate", crashing)
    params = GenerateParams(**{**PARAMS.__dict__, "batch_size": 2})
    with pytest.raises(Interrupt):
        generate_dataset(params, tmp_path, progress=False)
    assert is_complete(tmp_path, 0) and not is_complete(tmp_path, 1)
    assert not (tmp_path / "manifest.parquet").exists()
    first_shard = {p: p.stat().st_mtime_ns for p in (tmp_path / SHARDS_DIR / "00000").rglob("*")}

    calls.clear()
    monkeypatch.setattr(ToyBackend, "generate",
                        lambda self, jobs, seeds: calls.extend(j.id for j in jobs)
                        or original(self, jobs, seeds))
    manifest = generate_dataset(params, tmp_path, progress=False)
    assert len(calls) == 8 and len(set(calls)) == 8  # shards 1 and 2 only
    assert len(manifest) == 12 and manifest["id"].is_unique
    assert {p: p.stat().st_mtime_ns for p in first_shard} == first_shard
    assert not list((tmp_path / SHARDS_DIR).glob(".*"))  # no temporaries left
    fresh = generate_dataset(params, tmp_path / "fresh", progress=False)
    assert manifest["sha256"].tolist() == fresh["sha256"].tolist()


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from synreal.generate import GenerateParams, generate_dataset
    from synreal.generate.toy_backend import ToyBackend
    original, made = ToyBackend.generate, []
    def generate(self, jobs, seeds):
        if len(made) >= int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
        made.extend(jobs)
        return original(self, jobs, seeds)
    ToyBackend.generate = generate
    params = GenerateParams(backend="toy", per_class=5, image_size=24, shard_size=4,
                            batch_size=1)
    generate_dataset(params, Path(sys.argv[1]), progress=False)
""")


def test_resume_after_real_sigkill(tmp_path):
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), "6"],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert list((out / SHARDS_DIR).glob(".00001.tmp-*"))  # a half shard, never renamed
    assert is_complete(out, 0) and not is_complete(out, 1)
    done = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(out), "1000"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == 15 and manifest["id"].is_unique
    assert not list((out / SHARDS_DIR).glob(".*"))
    assert len(list((out / SHARDS_DIR).rglob("*.png"))) == 15


def test_ranks_split_shards_without_overlap(tmp_path, monkeypatch):
    original = ToyBackend.generate
    made: list[str] = []
    monkeypatch.setattr(ToyBackend, "generate",
                        lambda self, jobs, seeds: made.extend(j.id for j in jobs)
                        or original(self, jobs, seeds))
    parts = [generate_dataset(PARAMS, tmp_path, rank=r, world_size=2, progress=False)
             for r in range(2)]
    assert len(parts[0]) == 8  # shards 0 and 2 (the manifest is not complete yet)
    assert len(parts[1]) == 12  # the last rank to finish writes the full manifest
    assert sorted(made) == sorted(parts[1]["id"]) and len(made) == 12


def test_explicit_shard_range(tmp_path):
    part = generate_dataset(PARAMS, tmp_path, shard_range=(1, 2), progress=False)
    assert sorted(part["shard"].unique()) == [1] and len(part) == 4
    assert not (tmp_path / "manifest.parquet").exists()


def test_a_folder_of_another_plan_is_refused(tmp_path):
    generate_dataset(PARAMS, tmp_path, shard_range=(0, 1), progress=False)
    with pytest.raises(ConfigError, match="another generation plan"):
        generate_dataset(GenerateParams(**{**PARAMS.__dict__, "seed": 9}), tmp_path,
                         progress=False)


def test_blank_images_are_regenerated_with_the_next_seed(tmp_path, monkeypatch):
    original = ToyBackend.generate
    blanked: set[str] = set()

    def sometimes_black(self, jobs, seeds):
        out = original(self, jobs, seeds)
        for job, item in zip(jobs, out, strict=True):
            if job.id in ("cat_000001", "dog_000002") and job.id not in blanked:
                blanked.add(job.id)
                item.image = Image.new("RGB", item.image.size)
            elif job.id == "wild_000000" and len(blanked) < 4:
                blanked.add(f"wild{len(blanked)}")
                item.image = Image.new("RGB", item.image.size, (90, 90, 90))  # constant
        return out

    monkeypatch.setattr(ToyBackend, "generate", sometimes_black)
    manifest = generate_dataset(PARAMS, tmp_path, progress=False).set_index("id")
    assert manifest.loc["cat_000001", "regenerations"] == 1
    assert manifest.loc["cat_000001", "seed"] == image_seed(0, "cat", 1, attempt=1)
    assert manifest.loc["wild_000000", "regenerations"] == 2
    assert manifest["regenerations"].sum() == 4
    for path in manifest["path"]:
        assert np.asarray(Image.open(path)).std() > 1


def test_always_blank_fails_naming_the_image(tmp_path, monkeypatch):
    original = ToyBackend.generate

    def black(self, jobs, seeds):
        out = original(self, jobs, seeds)
        for item in out:
            item.image = Image.new("RGB", item.image.size)
        return out

    monkeypatch.setattr(ToyBackend, "generate", black)
    params = GenerateParams(**{**PARAMS.__dict__, "max_regenerations": 2})
    with pytest.raises(DataError, match="cat_000000 was blank 3 times"):
        generate_dataset(params, tmp_path, progress=False)


@pytest.mark.parametrize("fmt", ["jpg", "webp"])
def test_other_image_formats_and_resampling(tmp_path, fmt):
    params = GenerateParams(backend="toy", per_class=1, native_resolution=48, image_size=16,
                            image_format=fmt)
    manifest = generate_dataset(params, tmp_path, progress=False)
    assert all(p.endswith(f".{fmt}") for p in manifest["path"])
    assert (manifest["native_resolution"] == 48).all() and (manifest["width"] == 16).all()
    assert (manifest["resample"] == "bicubic").all()


def test_manifest_paths_follow_the_artifact_when_it_is_moved(tmp_path):
    from synreal.data.manifest import read_manifest
    from synreal.generate.params import GenerateParams
    from synreal.generate.run import generate_dataset

    params = GenerateParams(backend="toy", classes=("cat",), per_class=2, image_size=16,
                            shard_size=2)
    generate_dataset(params, tmp_path / ".work", progress=False)
    (tmp_path / ".work").rename(tmp_path / "final")
    manifest = read_manifest(tmp_path / "final" / "manifest.parquet")
    assert all(Path(p).is_file() and "final" in p for p in manifest["path"])
