import numpy as np
import pandas as pd
import pytest

from synreal.audit import person_blocking as blocking
from synreal.audit.params import AuditParams
from synreal.errors import ConfigError

OBJECT = np.array([[10.0, 10.0, 30.0, 30.0]])  # 20 x 20 = 400


@pytest.mark.parametrize("persons,expected", [
    ([], 0.0),                                       # nobody
    ([[40, 40, 50, 50]], 0.0),                       # a person elsewhere
    ([[0, 0, 20, 20]], 100 / 400),                   # one corner quarter
    ([[20, 0, 40, 40]], 200 / 400),                  # right half
    ([[0, 0, 50, 50]], 1.0),                         # covers everything
    ([[0, 0, 15, 15], [25, 10, 45, 30]], 100 / 400),  # the larger of two overlaps
])
def test_covered_fraction_on_hand_made_boxes(persons, expected):
    got = blocking.covered_fraction(OBJECT, [np.array(persons, float).reshape(-1, 4)])
    assert got[0] == pytest.approx(expected)


def test_overlap_rule_threshold_and_not_measured_objects():
    fractions = blocking.covered_fraction(
        np.array([[0, 0, 10, 10], [0, 0, 10, 10], [np.nan] * 4]),
        [np.array([[0, 0, 1, 10]]), np.array([[0, 0, 5, 10]]), np.array([[0, 0, 5, 5]])])
    np.testing.assert_allclose(fractions[:2], [0.1, 0.5])
    blocked = blocking.is_blocked(fractions, overlap=0.1)
    assert blocked[:2].tolist() == [0.0, 1.0] and np.isnan(blocked[2])


def test_no_detector_means_not_measured_never_zero():
    detector = blocking.create("none", AuditParams())
    assert detector.measured is False


def test_column_detector_reads_pixel_boxes():
    rows = pd.DataFrame({"person_bbox": [[0.0, 0.0, 32.0, 16.0], None], "width": [64, 64],
                         "height": [32, 32]})
    found = blocking.create("boxes-from-column", AuditParams()).persons([], rows)
    np.testing.assert_allclose(found[0], [[0, 0, 0.5, 0.5]])
    assert found[1].shape == (0, 4)


def test_toy_world_truth_blocks_real_images_and_no_narrow_ones(toy_sets):
    params = AuditParams()
    for name, expect_any in (("real", True), ("synthetic", False)):
        rows = toy_sets[name]
        objects = np.stack([np.asarray(b) / 64 for b in rows["bbox"]])
        persons = blocking.create("boxes-from-column", params).persons([], rows)
        blocked = blocking.is_blocked(blocking.covered_fraction(objects, persons),
                                      params.blocking_overlap)
        assert (blocked.sum() > 0) == expect_any
        if expect_any:  # every rendered occluder overlaps its object
            assert blocked[rows["occluded"].to_numpy()].mean() > 0.9


def test_owlvit_person_detector_with_missing_weights_names_the_path(tmp_path):
    missing = tmp_path / "owlvit"
    with pytest.raises(ConfigError, match="person_weights") as error:
        blocking.create("owlvit", AuditParams(person_backend="owlvit",
                                              person_weights=str(missing)))
    assert str(missing) in str(error.value)
