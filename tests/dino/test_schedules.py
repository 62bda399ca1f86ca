import math

import numpy as np
import pytest

from synreal.dino.schedules import cosine_schedule


def _official(base, final, epochs, niter, warmup_epochs=0, start=0.0):
    """The official utils.cosine_scheduler, written out loop by loop."""
    values = list(np.linspace(start, base, warmup_epochs * niter))
    rest = epochs * niter - len(values)
    values += [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / rest))
               for i in range(rest)]
    return np.array(values)


@pytest.mark.parametrize(("epochs", "niter", "warmup"), [(10, 7, 0), (10, 7, 2), (3, 1, 1)])
def test_cosine_schedule_matches_the_official_formula(epochs, niter, warmup):
    ours = cosine_schedule(5e-4, 1e-6, epochs, niter, warmup)
    np.testing.assert_allclose(ours, _official(5e-4, 1e-6, epochs, niter, warmup), rtol=1e-12)
    assert ours.shape == (epochs * niter,)


def test_momentum_rises_to_one_and_wd_from_004_to_04():
    momentum = cosine_schedule(0.996, 1.0, 5, 10)
    assert momentum[0] == pytest.approx(0.996) and momentum[-1] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(momentum) >= 0)
    wd = cosine_schedule(0.04, 0.4, 5, 10)
    assert wd[0] == pytest.approx(0.04) and wd[-1] == pytest.approx(0.4, abs=1e-3)
