"""DINO under torchrun: 2 CPU processes (gloo) train exactly like 1 with the same global batch.

Checks what a multi-GPU job relies on: data split by rank, gradients averaged by DDP, the
DINO centre all-reduced, rank 0 alone checkpointing, and a pre-emption signal that reaches
one process stopping all of them after the same step, from which a rerun resumes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from synreal.dino.augment import ViewPlan
from synreal.dino.params import DinoParams
from synreal.dino.train import train_dino

from ..conftest import REPO

pytestmark = pytest.mark.slow

#: The recipe (batch_size is global: 2 per process under torchrun, 4 in one process); drop
#: path off, since its draws depend on how a batch is split.
PER_PROCESS = DinoParams(arch="vit_tiny_demo", out_dim=64, epochs=3, batch_size=4,
                         warmup_epochs=1, global_crop_size=16, local_crop_size=8,
                         local_crops_number=2, num_workers=0, checkpoint_every=2,
                         eval_resize=18, drop_path_rate=0.0, lr=0.002)
WORKER = Path(__file__).with_name("ddp_worker.py")


def images(root: Path) -> list[tuple[str]]:
    """12 fixed random images under ``root`` (written once), as pretraining samples."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(12):
        pixels = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        path = root / f"{i}.png"
        if not path.is_file():
            Image.fromarray(pixels).save(path)
        samples.append((str(path),))
    return samples


def torchrun(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node=2", str(WORKER), str(work), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
                          check=False)


def outcomes(work: Path) -> list[dict]:
    return [json.loads((work / f"outcome-{rank}.json").read_text()) for rank in (0, 1)]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(a / "student.safetensors"), load_file(b / "student.safetensors")
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process with the global batch (2 x 2) of the distributed runs."""
    root = tmp_path_factory.mktemp("ddp")
    work = root / "single"
    summary = train_dino(PER_PROCESS, images(root / "images"),
                         ViewPlan.single(2), work, progress=False)
    assert summary["complete"] and summary["steps_done"] == 9
    return root, work


def test_two_processes_train_like_one_with_the_same_global_batch(single):
    root, reference = single
    work = root / "ddp"
    proc = torchrun(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert outcomes(work) == [{"complete": True, "world_size": 2}] * 2
    assert_same_weights(reference, work)
    steps = [json.loads(line)["step"] for line in (work / "train_log.jsonl").open()]
    assert steps == list(range(9)), "rank 0 alone logs, one line per step"


def test_a_signal_to_one_process_stops_all_after_the_same_step(single):
    root, reference = single
    work = root / "preempted"
    proc = torchrun(work, "1")  # only rank 1 gets SIGUSR1
    assert proc.returncode == 0, proc.stderr[-3000:]  # the worker records Preempted
    (first, second) = outcomes(work)
    assert "preempted_after" in first and first == second, (first, second)
    step = first["preempted_after"]
    assert 2 <= step < 9
    assert (work / "checkpoints" / f"state-{step}.json").is_file()
    assert not (work / "student.safetensors").exists()

    proc = torchrun(work)  # the requeued job: resumes from that checkpoint and finishes
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr
    assert outcomes(work) == [{"complete": True, "world_size": 2}] * 2
    assert_same_weights(reference, work)
