"""The OWL detector on tiny random OWL-ViT and OWLv2 models saved to disk and loaded back the
production way (a ``save_pretrained`` folder, ``local_files_only``, the network cut).

* Images whose queries tokenise to different lengths share one batch, and each gets the
  detections it gets alone (the study's breed names differ in length).
* The model class comes from the folder's ``config.json`` ``model_type``.
* Box geometry: with the box head zeroed, every box is the model's patch-grid prior, so the
  expected boxes follow from each version's documented preprocessing alone (OWL-ViT stretches
  the image to the square input; OWLv2 pads it at the bottom and right to a square first).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from synreal.audit import object_scale, tiny
from synreal.audit.owlvit import OwlVitDetector
from synreal.audit.params import AuditParams
from synreal.errors import ConfigError

VERSIONS = {"owlvit": (tiny.build_owlvit, "OwlViTForObjectDetection"),
            "owlv2": (tiny.build_owlv2, "Owlv2ForObjectDetection")}
GRID = 4  # the tiny models' 32 px input over 8 px patches




@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One tiny model folder per version."""
    root = tmp_path_factory.mktemp("owl")
    return {version: str(build(root / version)) for version, (build, _) in VERSIONS.items()}


def _images(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (*shape, 3), dtype=np.uint8) for shape in shapes]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_model_class_comes_from_the_folders_model_type(folders, offline, version):
    detector = OwlVitDetector(folders[version], "google/owlv2-base-patch16-ensemble",
                              "scale_weights")
    assert detector.model_type == version
    assert type(detector.model).__name__ == VERSIONS[version][1]


@pytest.mark.parametrize("version", VERSIONS)
def test_queries_of_different_token_lengths_batch_like_one_image_at_a_time(folders, offline,
                                                                          version):
    detector = OwlVitDetector(folders[version], "google/owlvit-base-patch32", "scale_weights")
    queries = [["a photo of a cat"], ["a photo of a british shorthair"],
               ["a photo of a staffordshire bull terrier", ]]
    lengths = {len(detector.processor.tokenizer(q[0]).input_ids) for q in queries}
    assert len(lengths) > 1  # the case that broke: the queries tokenise to different lengths
    images = _images([(40, 40), (30, 50), (50, 20)])
    together = detector.detect(images, queries, threshold=0.0)
    for image, query, batched in zip(images, queries, together, strict=True):
        (alone,) = detector.detect([image], [query], threshold=0.0)
        assert len(alone.scores) == GRID * GRID
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-5)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)
        np.testing.assert_array_equal(batched.queries, alone.queries)


@pytest.mark.parametrize("version", VERSIONS)
def test_object_scale_backend_with_mixed_breed_names(folders, offline, version):
    params = AuditParams(scale_backend="owlvit", scale_weights=folders[version],
                         detection_threshold=0.0)
    rows = pd.DataFrame({"label_name": ["cat", "British_Shorthair", "wild"]})
    finder = object_scale.create("owlvit", params)
    images = _images([(40, 40)] * 3)
    boxes = finder.boxes(images, rows)
    assert boxes.shape == (3, 4)
    for i in range(3):
        np.testing.assert_allclose(boxes[i], finder.boxes([images[i]], rows.iloc[[i]])[0],
                                   atol=1e-5)


def _grid_prior_boxes(version, height, width):
    """The patch-grid prior boxes in the image's normalised xyxy, from the papers' geometry.

    The prior of patch (row r, column c) is centred on the patch's bottom-right corner,
    ``((c + 1) / GRID, (r + 1) / GRID)``, one patch wide and high, as a fraction of the model's
    square input. OWL-ViT stretches the image onto that square, so the fractions are of the
    image's width and height; OWLv2 pads the image at the bottom and right to a square of side
    ``max(height, width)`` first, so they are of that side, and parts in the padding are cut.
    """
    r, c = np.divmod(np.arange(GRID * GRID), GRID)
    fractions = np.stack([c + 0.5, r + 0.5, c + 1.5, r + 1.5], axis=1) / GRID
    fractions = fractions.clip(0, 1)
    if version == "owlvit":
        return fractions
    side = max(height, width)
    pixels = (fractions * side).clip(0, [width, height, width, height])
    return pixels / [width, height, width, height]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("shape", [(24, 48), (48, 24), (32, 32)], ids=["wide", "tall", "square"])
def test_boxes_map_back_to_the_original_image(folders, offline, version, shape):
    detector = OwlVitDetector(folders[version], "google/owlv2-base-patch16-ensemble",
                              "scale_weights")
    head = detector.model.box_head.dense2
    with torch.no_grad():  # no learned offset: every box is its patch's prior
        head.weight.zero_()
        head.bias.zero_()
    (found,) = detector.detect(_images([shape]), [["a photo of a cat"]], threshold=0.0)
    expected = _grid_prior_boxes(version, *shape)
    np.testing.assert_allclose(found.boxes, expected, atol=1e-3)
    pixels = found.boxes * [shape[1], shape[0], shape[1], shape[0]]
    assert (pixels >= 0).all() and (pixels[:, [0, 2]] <= shape[1]).all()
    assert (pixels[:, [1, 3]] <= shape[0]).all()


def test_an_owlv2_box_is_where_the_same_image_padded_by_hand_puts_it(folders, offline):
    """OWLv2 pads with black; padding by hand first must not move any box."""
    detector = OwlVitDetector(folders["owlv2"], "google/owlv2-base-patch16-ensemble",
                              "scale_weights")
    (image,) = _images([(24, 48)])
    square = np.zeros((48, 48, 3), dtype=np.uint8)
    square[:24] = image
    found, padded = detector.detect([image, square], [["a cat"]] * 2, threshold=0.0)
    np.testing.assert_allclose(found.scores, padded.scores, atol=1e-5)
    in_image = (padded.boxes * 48).clip(0, [48, 24, 48, 24])
    np.testing.assert_allclose(found.boxes * [48, 24, 48, 24], in_image, atol=1e-3)


@pytest.mark.parametrize("config", [{"model_type": "clip"}, None], ids=["clip", "no-config"])
def test_other_models_are_refused_naming_the_folder(tmp_path, config):
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="owlv2") as error:
        OwlVitDetector(str(tmp_path), "google/owlv2-base-patch16-ensemble", "scale_weights")
    assert str(tmp_path) in str(error.value)


def test_boxes_clipped_to_zero_area_are_no_detection():
    from synreal.audit.owlvit import Detections

    found = Detections(np.array([[0.2, 0.2, 0.6, 0.7], [1.0, 0.3, 1.0, 0.9], [0.1, 0.0, 0.4, 0.0]]),
                       np.array([0.3, 0.9, 0.8]), np.array([0, 0, 0]))
    kept = found.nonempty()
    np.testing.assert_array_equal(kept.boxes, found.boxes[:1])
    np.testing.assert_array_equal(kept.scores, [0.3])
