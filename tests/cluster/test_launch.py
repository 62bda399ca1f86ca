"""The rendered launch commands of synreal.launch, and the pretrain rule that uses them."""

import shlex

import pytest

from synreal.errors import ConfigError
from synreal.launch import launcher, multinode_launcher

from ..conftest import run_snakemake


@pytest.mark.parametrize(("gpus", "expected"), [
    (0, "python -m synreal"),
    (1, "python -m synreal"),
    (4, "torchrun --standalone --nnodes=1 --nproc-per-node=4 -m synreal"),
])
def test_single_node_launcher(gpus, expected):
    assert launcher(gpus) == expected


def test_multinode_srun_recipe():
    command = multinode_launcher(nodes=2, gpus_per_node=4)
    assert command == (
        "srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=$SLURM_CPUS_PER_TASK "
        "torchrun --nnodes=2 --nproc-per-node=4 "
        "--rdzv-backend=c10d "
        '--rdzv-endpoint=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1):29500 '
        "--rdzv-id=$SLURM_JOB_ID -m synreal")
    assert shlex.split(command)[0] == "srun"  # one shell word list: pasteable into sbatch


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_invalid_gpu_counts_are_config_errors(bad):
    with pytest.raises(ConfigError, match="gpu must be an integer >= 0"):
        launcher(bad)


def test_multinode_needs_a_node_and_a_gpu():
    with pytest.raises(ConfigError, match="nodes must be an integer >= 1"):
        multinode_launcher(0, 4)
    with pytest.raises(ConfigError, match="gpus_per_node must be an integer >= 1"):
        multinode_launcher(2, 0)


@pytest.mark.parametrize(("gpus", "prefix"), [
    (0, " python -m synreal pretrain "),
    (4, " torchrun --standalone --nnodes=1 --nproc-per-node=4 -m synreal pretrain "),
])
def test_pretrain_rule_launches_by_the_jobs_gpu_count(tmp_path, gpus, prefix):
    proc = run_snakemake(tmp_path, "-n", "-p", "--forceall", "--cores", "1",
                         "--resources", "gpu=8", "--set-resources", f"pretrain:gpu={gpus}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = [line for line in proc.stdout.splitlines() if "synreal pretrain " in line]
    assert len(commands) == 2, proc.stdout[-3000:]  # the micro study's two pretrain runs
    assert all(prefix in line for line in commands), commands
