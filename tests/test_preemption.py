"""A stage that exits 75 under Slurm (state saved after a pre-emption signal) requeues its job."""

import os
import stat

from synreal.preemption import requeue_slurm_job


def fake_scontrol(tmp_path, rc: int = 0):
    """An ``scontrol`` that records its arguments (Slurm's own is tested in tests/cluster)."""
    script = tmp_path / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls'}\nexit {rc}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}


def test_a_slurm_job_requeues_itself(tmp_path):
    env = {**fake_scontrol(tmp_path), "SLURM_JOB_ID": "123"}
    assert requeue_slurm_job(env) is True
    assert (tmp_path / "calls").read_text() == "requeue 123\n"


def test_only_rank_zero_requeues_and_never_outside_slurm(tmp_path):
    env = fake_scontrol(tmp_path)
    assert requeue_slurm_job(env) is False
    assert requeue_slurm_job({**env, "SLURM_JOB_ID": "5", "RANK": "1"}) is False
    assert requeue_slurm_job({**env, "SLURM_JOB_ID": "5", "SYNREAL_SLURM_REQUEUE": "0"}) is False
    assert not (tmp_path / "calls").exists()


def test_a_refused_requeue_is_reported_not_raised(tmp_path, capsys):
    env = {**fake_scontrol(tmp_path, rc=1), "SLURM_JOB_ID": "9"}
    assert requeue_slurm_job(env) is False
    assert "scontrol requeue 9 failed" in capsys.readouterr().err
