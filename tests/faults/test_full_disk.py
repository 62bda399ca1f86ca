"""A full disk during a write leaves the previous complete artifact (or shard, or checkpoint).

The disk fills up at a writer's most delicate moment (an ``OSError(ENOSPC)`` injected with
``SYNREAL_FAULT=<point>:<n>:enospc``, see :mod:`synreal.faults`). Guarantees: the stage exits
with one sentence saying the disk is full (exit code 2, no traceback); a finished artifact at
the same path is byte-for-byte untouched; finished shards and checkpoints of a resumable
stage are kept, and the rerun after freeing space continues from them to the same result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synreal import faults
from synreal.cli import main


@pytest.fixture(autouse=True)
def _fresh_fault_counters(monkeypatch):
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.delenv(faults.ENV_VAR, raising=False)


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def ingested(tmp_path) -> Path:
    """A small real dataset (3 classes x 2 training images) ingested into results/ingest/."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("test", 1)):
        for name in ("cat", "dog", "wild"):
            folder = tmp_path / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                array = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(array).save(folder / f"{i}.png")
    out = tmp_path / "results" / "ingest" / "i00000000000"
    assert main(["ingest", "--spec-json", json.dumps(_ingest_spec(tmp_path)),
                 "--out", str(out)]) == 0
    return out


def _ingest_spec(tmp_path: Path) -> dict:
    return {"stage": "ingest", "key": "i00000000000",
            "params": {"format": "imagefolder", "on_corrupt": "fail"},
            "inputs": {"root": str(tmp_path / "data")}}


def _one_disk_full_sentence(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("synreal")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: cannot write " in lines[0] and "(the disk is full)" in lines[0]
    assert "rerun" in lines[0]
    return lines[0]


def test_finished_artifact_survives_a_full_disk_on_rewrite(ingested, tmp_path, monkeypatch,
                                                            capsys):
    before = _files(ingested)
    capsys.readouterr()
    monkeypatch.setenv(faults.ENV_VAR, "artifact.commit:1:enospc")
    code = main(["ingest", "--spec-json", json.dumps(_ingest_spec(tmp_path)),
                 "--out", str(ingested)])
    assert code == 2
    _one_disk_full_sentence(capsys)
    assert _files(ingested) == before
    assert [p.name for p in ingested.parent.iterdir()] == [ingested.name], "no temporaries"


def _generate(ingested: Path, out: Path) -> int:
    spec = {"stage": "generate", "key": out.name,
            "params": {"backend": "toy", "dataset": "afhq", "image_size": 16, "shard_size": 2,
                       "seed": 1},
            "inputs": {"manifest": str(ingested / "manifest.parquet")}}
    return main(["generate", "--spec-json", json.dumps(spec), "--out", str(out)])


def test_full_disk_during_a_shard_keeps_finished_shards(ingested, tmp_path, monkeypatch,
                                                        capsys):
    out = tmp_path / "results" / "generate" / "g00000000000"
    monkeypatch.setenv(faults.ENV_VAR, "shard.image:4:enospc")  # the second image of shard 1
    assert _generate(ingested, out) == 2
    _one_disk_full_sentence(capsys)
    assert not out.exists()
    work = out.with_name(f".{out.name}.partial")
    shards = work / "shards"
    assert sorted(p.name for p in shards.iterdir()) == ["00000"], "no half shard is left"
    kept = _files(shards / "00000")
    kept_mtime = (shards / "00000" / "shard.parquet").stat().st_mtime_ns

    monkeypatch.delenv(faults.ENV_VAR)
    assert _generate(ingested, out) == 0
    assert (out / "shards" / "00000" / "shard.parquet").stat().st_mtime_ns == kept_mtime
    assert _files(out / "shards" / "00000") == kept
    clean = tmp_path / "clean" / "generate" / "g00000000000"
    assert _generate(ingested, clean) == 0
    a = pd.read_parquet(out / "manifest.parquet").drop(columns="path")
    b = pd.read_parquet(clean / "manifest.parquet").drop(columns="path")
    assert len(a) == 6 and a.equals(b)


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from synreal.dino.augment import ViewPlan
    from synreal.dino.checkpoint import latest_checkpoint, load_training_state
    from synreal.dino.params import DinoParams
    from synreal.dino.train import train_dino

    # 3 epochs of 2 steps: checkpoints at steps 2 and 4 (the last step exports instead)
    recipe = DinoParams(arch="vit_tiny_demo", out_dim=32, epochs=3, batch_size=4,
                        warmup_epochs=1, global_crop_size=16, local_crop_size=8,
                        local_crops_number=2, num_workers=0, checkpoint_every=2, eval_resize=18)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png")
        samples.append((str(tmp_path / f"{i}.png"),))
    work = tmp_path / "work"
    monkeypatch.setenv(faults.ENV_VAR, "checkpoint.save:2:enospc")  # the save at step 4
    with pytest.raises(OSError, match="No space left"):
        train_dino(recipe, samples, ViewPlan.single(2), work, progress=False)
    marker = latest_checkpoint(work)
    assert marker is not None and marker.name == "state-2.json"
    tensors, scalars = load_training_state(marker)
    assert scalars["step"] == 2 and tensors

    monkeypatch.delenv(faults.ENV_VAR)
    summary = train_dino(recipe, samples, ViewPlan.single(2), work, progress=False)
    assert summary["complete"] and summary["steps_done"] == 6
    log = [json.loads(line)["step"] for line in (work / "train_log.jsonl").open()]
    assert log == [0, 1, 2, 3, 4, 5], "resumed from step 2, not from scratch"


def test_full_disk_during_a_table_keeps_each_file_whole(tmp_path, monkeypatch):
    from synreal.report.table_writer import write_table

    old = pd.DataFrame({"run": ["real"], "top-1": ["50.0"]})
    write_table(old, tmp_path, "main", "old caption")
    before = _files(tmp_path)
    monkeypatch.setenv(faults.ENV_VAR, "table.write:1:enospc")
    with pytest.raises(OSError, match="No space left"):
        write_table(pd.DataFrame({"run": ["new"], "top-1": ["1.0"]}), tmp_path, "main", "new")
    visible = {name: digest for name, digest in _files(tmp_path).items()
               if not name.startswith(".")}
    assert visible == before
