"""Fault injection for the reliability tests: die or fail at a named point of a writer.

Writers call :func:`point` at the moments where a crash is most dangerous (half a shard on
disk, a checkpoint's tensors saved but not yet marked complete, a Parquet file written but
its artifact not yet renamed into place, one of a table's three files written). Unless the
environment variable ``SYNREAL_FAULT`` is set, :func:`point` is one dictionary look-up and
does nothing. With it set::

    SYNREAL_FAULT=<point>[:<n>[:<action>]]

the ``n``-th time (default 1) this process reaches ``<point>`` it performs ``<action>``:

``kill``       SIGKILL this process (default): a job killed by the OOM killer or ``kill -9``.
``killgroup``  SIGKILL this process's whole process group: the machine dies under the whole
               run (Snakemake and its jobs), as on a node failure or a pre-emption without
               warning. Start Snakemake in its own session, or this kills its caller too.
``enospc``     raise ``OSError(ENOSPC)``: the disk filled up during this write.

Points (``grep -rn "faults.point" src`` lists the call sites):

=====================  ===========================================================
``shard.image``        generation: after each image file of a shard is written
``shard.commit``       generation: a shard's table written, before its rename
``checkpoint.save``    pretraining: tensors saved, before the JSON marker that completes them
``features.write``     features: ``features.parquet`` written, artifact not yet renamed
``artifact.commit``    every keyed stage: ``spec.json`` written, before the final rename
``table.write``        tables: a csv, tex or md file written, before its rename
``train.step``         pretraining: after each optimizer step, before the checkpoint
=====================  ===========================================================

A second variable stretches work instead of breaking it::

    SYNREAL_SLOW=<point>:<seconds>

sleeps ``<seconds>`` at every arrival at ``<point>``, so that a test can make a short run
outlast a Slurm time limit by a known margin, whatever the machine's speed.

Never set ``SYNREAL_FAULT`` or ``SYNREAL_SLOW`` outside tests.
"""

from __future__ import annotations

import errno
import os
import signal
import time

ENV_VAR = "SYNREAL_FAULT"
SLOW_ENV_VAR = "SYNREAL_SLOW"
ACTIONS = ("kill", "killgroup", "enospc")

_hits: dict[str, int] = {}


def parse(value: str) -> tuple[str, int, str]:
    """``"<point>[:<n>[:<action>]]"`` -> ``(point, n, action)``; errors say the format."""
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError(f"{ENV_VAR}={value!r} is not <point>[:<n>[:<action>]].")
    name = parts[0]
    count = int(parts[1]) if len(parts) > 1 and parts[1] else 1
    action = parts[2] if len(parts) > 2 else "kill"
    if count < 1 or action not in ACTIONS:
        raise ValueError(f"{ENV_VAR}={value!r}: n must be >= 1 and the action one of {ACTIONS}.")
    return name, count, action


def point(name: str) -> None:
    """Mark fault point ``name``; inert unless ``SYNREAL_FAULT`` or ``SYNREAL_SLOW`` selects it."""
    slow = os.environ.get(SLOW_ENV_VAR)
    if slow is not None:
        _stretch(name, slow)
    value = os.environ.get(ENV_VAR)
    if value is None:
        return
    target, count, action = parse(value)
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != count:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "killgroup":  # a warm job's group is its client's (synreal.warm)
        from synreal.warm import JOB_GROUP_ENV_VAR

        os.killpg(int(os.environ.get(JOB_GROUP_ENV_VAR) or os.getpgid(0)), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _stretch(name: str, value: str) -> None:
    target, _, seconds = value.partition(":")
    try:
        delay = float(seconds)
    except ValueError:
        raise ValueError(f"{SLOW_ENV_VAR}={value!r} is not <point>:<seconds>.") from None
    if target == name:
        time.sleep(delay)
