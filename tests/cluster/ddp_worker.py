"""One process of a 2-process CPU (gloo) DINO run, started by torchrun in test_distributed.py.

usage: torchrun --standalone --nproc-per-node=2 ddp_worker.py WORK_DIR [SIGNAL_RANK]

Trains the tiny recipe of test_distributed.py on its images (half its global batch each);
with SIGNAL_RANK, that process alone sends itself SIGUSR1 once two steps are logged (a
pre-emption signal reaching one process of a multi-GPU job first). Each process writes
``outcome-<rank>.json``: ``{"complete": ...}`` or ``{"preempted_after": step}``.
"""

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from synreal.dino.augment import ViewPlan
from synreal.dino.train import Preempted, train_dino
from tests.cluster.test_distributed import PER_PROCESS, images


def signal_after_two_steps(log: Path) -> None:
    while not (log.is_file() and len(log.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGUSR1)


def main() -> None:
    work = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    if len(sys.argv) > 2 and int(sys.argv[2]) == rank:
        threading.Thread(target=signal_after_two_steps, args=(work / "train_log.jsonl",),
                         daemon=True).start()
    try:
        summary = train_dino(PER_PROCESS, images(work.parent / "images"), ViewPlan.single(2),
                             work, progress=False)
        outcome = {"complete": summary["complete"], "world_size": summary["world_size"]}
    except Preempted as stop:
        outcome = {"preempted_after": stop.step}
    (work / f"outcome-{rank}.json").write_text(json.dumps(outcome))


if __name__ == "__main__":
    main()
