"""Generation split over two processes by torchrun: same artifact as one process."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from synreal.data.manifest import write_manifest
from synreal.stages.generate import resolve

from .conftest import write_real_set


def _spec(manifest: Path) -> str:
    params = resolve({"backend": "toy-variations", "image_size": 24, "shard_size": 2, "seed": 3})
    return json.dumps({"stage": "generate", "version": 1, "key": "0123456789ab",
                       "params": params, "upstream": {}, "inputs": {"manifest": str(manifest)}})


def _run(command: list[str], cwd: Path) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_two_processes_make_the_same_dataset_as_one(tmp_path):
    real = write_real_set(tmp_path / "real", per_class=4, size=24)
    manifest = tmp_path / "real.parquet"
    write_manifest(real.assign(sha256="", width=24, height=24), manifest, {})
    spec = _spec(manifest)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    log = _run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "synreal", "generate",
                "--spec-json", spec, "--out", "two"], tmp_path)
    assert "process 0 of 2" in log and "process 1 of 2" in log
    _run([sys.executable, "-m", "synreal", "generate", "--spec-json", spec, "--out", "one"],
         tmp_path)
    two = pd.read_parquet(tmp_path / "two" / "manifest.parquet").sort_values("id")
    one = pd.read_parquet(tmp_path / "one" / "manifest.parquet").sort_values("id")
    assert len(two) == 8 and two["id"].is_unique
    assert two["sha256"].tolist() == one["sha256"].tolist()
    assert (tmp_path / "two" / "spec.json").is_file()
    assert not list(tmp_path.glob(".two.*"))  # the shared work directory became the artifact
