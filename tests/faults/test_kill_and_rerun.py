"""kill -9 anywhere, rerun, lose nothing: a micro study killed seven times equals a clean one.

One clean run of the micro study, and one fresh run of the same config that is SIGKILLed
(Snakemake and all its jobs at once, as when a node dies) seven times: at seeded random
points and at the write boundaries of generation, pretraining, features and the tables. After
each kill the run is resumed as a user would (``snakemake --unlock`` then ``--cores 2
--rerun-incomplete``). The resumed study must equal the clean one: same keys, same manifests
and image bytes, the same pretrained weights bit for bit (CPU, fp32: the checkpoint holds the
optimizer moments, the DINO centre and the torch RNG, and data order and augmentations are
seeded per epoch and sample), the same features, metrics and tables. Because both runs start
from nothing, this is also the determinism check: same config and seed, same everything.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from ..conftest import snakemake_env
from .conftest import (
    kill_group_when,
    metrics,
    plan_of,
    resume,
    snakemake,
    snakemake_command,
    unfinished_leftovers,
)

pytestmark = pytest.mark.slow

RNG = random.Random(9)
#: Kills in order: (SYNREAL_FAULT value, or None for an external SIGKILL mid-training).
KILLS = (
    f"shard.image:{RNG.randint(1, 18)}:killgroup",  # a random image of a shard
    "shard.commit:2:killgroup",                      # shard table written, not renamed
    "checkpoint.save:2:killgroup",                   # tensors saved, marker not written
    None,                                            # a random training step, from outside
    "features.write:1:killgroup",                    # features.parquet written, not renamed
    "artifact.commit:1:killgroup",                   # spec.json written, artifact not renamed
    f"table.write:{RNG.randint(1, 3)}:killgroup",    # one of a table's files half-committed
)
EXTERNAL_KILL_AFTER_STEPS = RNG.randint(3, 5)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("clean")
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def _kill_during_training(workdir: Path) -> int:
    """Start the run, SIGKILL its process group once a pretraining log reaches N new steps."""
    env = snakemake_env()
    env.pop("SYNREAL_FAULT", None)
    start = time.time()

    def training_has_progressed() -> bool:
        for log in (workdir / "results" / "pretrain").glob(".*.partial/train_log.jsonl"):
            try:
                if (log.stat().st_mtime > start
                        and len(log.read_text().splitlines()) >= EXTERNAL_KILL_AFTER_STEPS):
                    return True
            except FileNotFoundError:
                continue
        return False

    proc = subprocess.Popen(snakemake_command(workdir, "--cores", "2", "--rerun-incomplete"),
                            cwd=workdir, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_group_when(proc, training_has_progressed), "pretraining ended before the kill"
    return proc.returncode


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, list[tuple[str, int]]]:
    workdir = tmp_path_factory.mktemp("killed")
    history = []
    for fault in KILLS:
        unlock = snakemake(workdir, "--unlock")
        assert unlock.returncode == 0, unlock.stderr[-2000:]
        if fault is None:
            history.append(("external SIGKILL during pretraining", _kill_during_training(workdir)))
            continue
        proc = snakemake(workdir, "--cores", "2", "--rerun-incomplete", fault=fault)
        history.append((fault, proc.returncode))
    final = resume(workdir)
    assert final.returncode == 0, final.stderr[-3000:]
    return workdir, history


def test_every_kill_landed(killed):
    _, history = killed
    assert [code for _, code in history] == [-9] * len(KILLS), history


def test_same_keys_and_no_unfinished_artifact(clean, killed):
    workdir, _ = killed

    def keyed(root: Path) -> set[str]:
        return {f"{d.parent.name}/{d.name}" for d in (root / "results").glob("*/*")
                if (d / "spec.json").is_file()}

    assert keyed(workdir) == keyed(clean)
    assert len(keyed(clean)) >= 18
    assert unfinished_leftovers(workdir / "results") == []
    hidden = [p for p in (workdir / "results").glob("*/.*") if p.is_dir()]
    assert hidden == [], "work folders of finished artifacts must be gone"
    for spec in (clean / "results").glob("*/*/spec.json"):
        a = json.loads(spec.read_text())
        b = json.loads((workdir / spec.relative_to(clean)).read_text())
        a.pop("provenance"), b.pop("provenance")
        assert a == b, spec


def test_manifests_and_generated_images_equal(clean, killed):
    workdir, _ = killed
    plan = plan_of()
    for job in [*plan.datasets.values(), *plan.generators.values()]:
        a = pd.read_parquet(clean / job.out_dir / "manifest.parquet")
        b = pd.read_parquet(workdir / job.out_dir / "manifest.parquet")
        assert a.drop(columns="path").equals(b.drop(columns="path")), job.ref
    for job in plan.generators.values():
        manifest = pd.read_parquet(workdir / job.out_dir / "manifest.parquet")
        images = sorted((workdir / job.out_dir / "shards").glob("*/*/*.png"))
        assert len(images) == len(manifest) == 18
        on_disk = {p.relative_to(workdir / job.out_dir).as_posix():
                   hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
        assert on_disk == dict(zip(manifest["relpath"], manifest["sha256"], strict=True))


def test_resumed_pretraining_equals_uninterrupted_bit_for_bit(clean, killed):
    workdir, _ = killed
    for job in plan_of().pretrain.values():
        for name in ("teacher_backbone.safetensors", "student.safetensors"):
            a = load_file(clean / job.out_dir / name)
            b = load_file(workdir / job.out_dir / name)
            assert a.keys() == b.keys()
            for tensor in a:
                assert torch.equal(a[tensor], b[tensor]), f"{job.ref} {name} {tensor}"
        log = [json.loads(line) for line in (workdir / job.out_dir / "train_log.jsonl").open()]
        ref = [json.loads(line) for line in (clean / job.out_dir / "train_log.jsonl").open()]
        assert [r["step"] for r in log] == list(range(len(ref)))
        assert [r["loss"] for r in log] == [r["loss"] for r in ref]


def test_features_metrics_and_tables_equal(clean, killed):
    from synreal.eval.features_io import read_features

    workdir, _ = killed
    for chain in plan_of().evaluations.values():
        path = Path(chain["features"].out_dir) / "features.parquet"
        a, b = read_features(clean / path), read_features(workdir / path)
        assert (a.embeddings == b.embeddings).all()
        for stage in ("probe", "knn", "retrieval"):
            out = chain[stage].out_dir
            assert metrics(clean / out) == metrics(workdir / out), out
    tables = sorted((clean / "results" / "tables").glob("*.*"))
    assert len(tables) >= 9
    for table in tables:
        assert (workdir / table.relative_to(clean)).read_bytes() == table.read_bytes(), table.name
