"""Which process of a multi-process job this is, for stages that split their work.

``torchrun`` and ``accelerate launch`` start one process per GPU and describe the job in
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``. A stage splits its work by rank, waits for the
others at :func:`barrier`, and only rank 0 finishes the artifact (see
:func:`synreal.cli.run_stage`). A single process is rank 0 of 1, and nothing here costs it.
"""

from __future__ import annotations

import os


def process_rank() -> tuple[int, int, int]:
    """``(rank, world size, local rank)``; ``(0, 1, 0)`` outside a launcher."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def barrier() -> None:
    """Wait until every process of the job gets here (a no-op for a single process).

    Uses a gloo process group (CPU, works beside NCCL users) from the launcher's
    ``MASTER_ADDR`` / ``MASTER_PORT``; creates it on first use.
    """
    _, world, _ = process_rank()
    if world == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()


def device_for_rank(cuda_available: bool) -> str:
    """The calling process's device: ``cuda:<local rank>`` under a launcher, else cuda/cpu."""
    _, world, local = process_rank()
    if not cuda_available:
        return "cpu"
    return f"cuda:{local}" if world > 1 else "cuda"
