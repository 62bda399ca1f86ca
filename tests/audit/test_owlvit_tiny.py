"""The OWL-ViT backends on a tiny random OWL-ViT saved to disk and loaded back the
production way (a ``save_pretrained`` folder, ``local_files_only``): object-scale boxes and
person boxes come out in the documented shapes and ranges. Accuracy needs real weights."""

import numpy as np
import pandas as pd
import pytest

from synreal.audit import object_scale, person_blocking, tiny
from synreal.audit.owlvit import OwlVitDetector
from synreal.audit.params import AuditParams


@pytest.fixture(scope="module")
def tiny_owlvit(tmp_path_factory):
    return str(tiny.build_owlvit(tmp_path_factory.mktemp("owlvit")))


def _images(n=3):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(n)]


def test_detector_loads_from_a_local_folder_and_returns_normalised_boxes(tiny_owlvit):
    detector = OwlVitDetector(tiny_owlvit, "google/owlvit-base-patch32", "scale_weights")
    found = detector.detect(_images(), [["a photo of a cat"]] * 3, threshold=0.0)
    assert len(found) == 3
    for detections in found:
        assert detections.boxes.shape == (16, 4)  # every patch of a 32 px / 8 px grid
        assert (detections.boxes >= 0).all() and (detections.boxes <= 1).all()
        assert ((detections.scores >= 0) & (detections.scores <= 1)).all()


def test_object_scale_and_person_backends_use_it(tiny_owlvit):
    params = AuditParams(scale_backend="owlvit", scale_weights=tiny_owlvit,
                         person_backend="owlvit", person_weights=tiny_owlvit,
                         detection_threshold=0.0, person_threshold=0.0)
    rows = pd.DataFrame({"label_name": ["cat", "dog", "wild"]})
    boxes = object_scale.create("owlvit", params).boxes(_images(), rows)
    # a random model predicts some boxes that clip to zero area: those are no detection, and
    # an image left with none has no box (NaN), never a zero-area one
    found = np.isfinite(boxes).all(axis=1)
    assert boxes.shape == (3, 4) and found.any() and np.isnan(boxes[~found]).all()
    ratios = object_scale.area_ratio(boxes[found])
    assert ((ratios > 0) & (ratios <= 1)).all()
    persons = person_blocking.create("owlvit", params).persons(_images(), rows)
    assert len(persons) == 3 and all(p.shape[1] == 4 for p in persons)
