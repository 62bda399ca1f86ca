"""``SYNREAL_SLOW`` stretches a named point by a fixed delay and leaves every other point alone."""

import pytest

from synreal import faults


def test_slow_sleeps_only_at_its_point(monkeypatch):
    slept = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    monkeypatch.setenv(faults.SLOW_ENV_VAR, "train.step:2.5")
    faults.point("train.step")
    faults.point("checkpoint.save")
    faults.point("train.step")
    assert slept == [2.5, 2.5]


def test_unset_slow_never_sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    monkeypatch.delenv(faults.SLOW_ENV_VAR, raising=False)
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    faults.point("train.step")
    assert slept == []


def test_malformed_slow_value_says_the_format(monkeypatch):
    monkeypatch.setenv(faults.SLOW_ENV_VAR, "train.step:soon")
    with pytest.raises(ValueError, match="<point>:<seconds>"):
        faults.point("train.step")
