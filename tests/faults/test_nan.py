"""A NaN in training stops the pipeline with the step number and the last good checkpoint.

The loop-level guard is tested in tests/dino/test_train.py (a poisoned loss at a known step).
Here the NaN comes from the config, as users meet it (a learning rate that blows the weights
up), and travels through Snakemake: the pretrain job fails, its log holds one sentence naming
the step and the checkpoint, that checkpoint exists and is complete, and no finished-looking
pretrain artifact is left.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from synreal.dino.checkpoint import latest_checkpoint

from .conftest import plan_of, snakemake


@pytest.mark.slow
def test_nan_loss_in_the_pipeline_names_step_and_checkpoint(micro_config, tmp_path):
    micro_config["pretrain"]["params"].update(lr=1e30, checkpoint_every=1)
    config = tmp_path / "diverging.yaml"
    config.write_text(yaml.safe_dump(micro_config))
    job = plan_of(config).pretrain["real"]
    proc = snakemake(tmp_path, "--cores", "2", job.target, config=config)
    assert proc.returncode != 0
    log = (tmp_path / "results" / "logs" / "pretrain" / f"{job.key}.log").read_text()
    errors = re.findall(r"synreal pretrain: error: .*", log)  # may follow the progress bar
    assert len(errors) == 1 and "Traceback" not in log, log[-3000:]
    found = re.search(r"loss became (nan|inf|-inf) at step (\d+); last good checkpoint: (\S+)\.",
                      errors[0])
    assert found, errors[0]
    step, checkpoint = int(found[2]), Path(tmp_path / found[3])
    assert checkpoint.is_file() and checkpoint.name == f"state-{step}.json"
    assert latest_checkpoint(checkpoint.parent.parent) == checkpoint
    assert not (tmp_path / job.target).exists()
