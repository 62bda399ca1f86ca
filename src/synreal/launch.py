"""How a stage's command is launched on 0, 1 or several GPUs, on one node or several.

A stage is always ``python -m synreal <stage> ...`` (see :mod:`synreal.cli`). On more than one
GPU of one node, that same module runs under ``torchrun``, one process per GPU, and the
training loop (:func:`synreal.dino.train.train_dino`) picks up ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` from it. Several nodes need one ``torchrun`` per node, started by ``srun``
inside one Slurm allocation; :func:`multinode_launcher` renders that recipe.

Example:
    >>> launcher(0)
    'python -m synreal'
    >>> launcher(4)
    'torchrun --standalone --nnodes=1 --nproc-per-node=4 -m synreal'
"""

from __future__ import annotations

from synreal.errors import ConfigError

#: The module every stage runs as.
MODULE = "synreal"
#: Port of the rendezvous on the first node of a multi-node allocation.
RENDEZVOUS_PORT = 29500


def _check(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return value


def launcher(gpus: int) -> str:
    """Command prefix that runs ``python -m synreal`` on ``gpus`` GPUs of this node.

    0 GPUs (CPU) and 1 GPU: plain ``python``. More: ``torchrun --standalone`` with one
    process per GPU (``--standalone`` picks a free local port, so several such jobs can
    share a node).
    """
    _check("gpu", gpus, 0)
    if gpus <= 1:
        return f"python -m {MODULE}"
    return f"torchrun --standalone --nnodes=1 --nproc-per-node={gpus} -m {MODULE}"


def multinode_launcher(nodes: int, gpus_per_node: int, port: int = RENDEZVOUS_PORT) -> str:
    """``srun`` recipe: one ``torchrun`` per node of the allocation, meeting on its first node.

    Runs inside a Slurm job of ``nodes`` nodes with ``gpus_per_node`` GPUs each (e.g.
    ``sbatch --nodes=2 --gpus-per-node=4``); the rendezvous id is the Slurm job id, so
    concurrent jobs never join each other. The ``$(...)`` and ``$SLURM_*`` parts are
    expanded by the job's shell on the first node.
    """
    _check("nodes", nodes, 1)
    _check("gpus_per_node", gpus_per_node, 1)
    head = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
    # srun does not inherit sbatch's --cpus-per-task (Slurm 22.05 on): without it each
    # node's torchrun, and so every data-loading worker, would get one CPU
    return (f"srun --nodes={nodes} --ntasks-per-node=1 --cpus-per-task=$SLURM_CPUS_PER_TASK "
            f"torchrun --nnodes={nodes} --nproc-per-node={gpus_per_node} "
            f"--rdzv-backend=c10d --rdzv-endpoint={head}:{port} --rdzv-id=$SLURM_JOB_ID "
            f"-m {MODULE}")

