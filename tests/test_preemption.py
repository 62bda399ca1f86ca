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


def test_slurm_time_left_formats_parse():
    from synreal.preemption import parse_time_left

    assert parse_time_left("1-02:03:04") == 93784
    assert parse_time_left("02:03:04") == 7384
    assert parse_time_left("03:04") == 184
    assert parse_time_left("UNLIMITED") is None


def test_the_time_limit_warning_fires_before_the_limit_with_room_for_a_step():
    from synreal.preemption import TimeLimitWarning

    now = [0.0]
    steady = TimeLimitWarning(lambda: 600, margin_s=120, refresh_s=1e9, clock=lambda: now[0])
    fired = []
    for t in range(10, 600, 10):  # 10 s steps: the margin decides
        now[0] = t
        fired.append((t, steady.near()))
    assert next(t for t, near in fired if near) == 490  # the first step with < 120 s left
    now[0] = 0.0
    slow = TimeLimitWarning(lambda: 600, margin_s=120, refresh_s=1e9, clock=lambda: now[0])
    now[0] = 200
    assert slow.near()  # 400 s left, but three 200 s steps would not fit


def test_outside_slurm_it_never_fires():
    from synreal.preemption import TimeLimitWarning

    warning = TimeLimitWarning.for_this_job({"PATH": os.environ["PATH"]})
    assert warning.deadline is None and not warning.near()


def test_a_limit_lowered_while_the_job_runs_is_seen_at_the_next_refresh():
    from synreal.preemption import TimeLimitWarning

    now, left = [0.0], [3600.0]
    warning = TimeLimitWarning(lambda: left[0], margin_s=120, refresh_s=60, clock=lambda: now[0])
    now[0], left[0] = 30, 100  # an admin shortens the limit: not read yet
    assert not warning.near()
    now[0] = 61
    assert warning.near()
