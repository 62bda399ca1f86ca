import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from synreal.audit import object_scale
from synreal.audit.foreground import foreground_box, foreground_boxes
from synreal.audit.params import SCALE_BACKENDS, AuditParams
from synreal.data.manifest import load_rgb
from synreal.errors import ConfigError

WEIGHTED = {"owlvit": "scale_weights", "yolo-world": "scale_weights"}


def test_foreground_box_of_a_flat_rectangle_is_exact():
    image = np.full((40, 40, 3), 30, np.uint8)
    image[10:30, 5:25] = (200, 60, 60)
    np.testing.assert_allclose(foreground_box(image), [5 / 40, 10 / 40, 25 / 40, 30 / 40])


def test_foreground_ignores_a_background_gradient_and_global_brightness():
    ramp = np.linspace(40, 200, 48)[:, None, None] * np.ones((48, 48, 3))
    image = ramp.copy()
    image[12:36, 16:40] = (30, 200, 90)
    for factor in (0.4, 1.0):
        box = foreground_box(np.clip(image * factor, 0, 255).astype(np.uint8))
        np.testing.assert_allclose(box, [16 / 48, 12 / 48, 40 / 48, 36 / 48])


def test_foreground_scale_correlates_with_the_rendered_object_size(toy_sets):
    real = toy_sets["real"]
    boxes = foreground_boxes([load_rgb(p) for p in real["path"]])
    rho = spearmanr(object_scale.area_ratio(boxes), real["true_scale"]).statistic
    assert rho > 0.8


def test_boxes_from_column_normalises_pixels_and_keeps_missing_boxes_nan():
    rows = pd.DataFrame({"bbox": [[8.0, 16.0, 24.0, 32.0], None], "width": [32, 32],
                         "height": [64, 64], "label_name": ["a", "b"]})
    boxes = object_scale.create("boxes-from-column", AuditParams()).boxes([], rows)
    np.testing.assert_allclose(boxes[0], [0.25, 0.25, 0.75, 0.5])
    assert np.isnan(boxes[1]).all()
    assert np.isnan(object_scale.area_ratio(boxes)[1])


def test_registry_lists_the_configurable_backends_and_rejects_unknown_names():
    assert object_scale.known_backends() == sorted(SCALE_BACKENDS)
    with pytest.raises(ConfigError, match="known"):
        object_scale.create("yolo-v9", AuditParams())


@pytest.mark.parametrize("backend", sorted(WEIGHTED))
def test_a_model_backend_with_a_missing_weights_path_names_the_path(backend, tmp_path):
    missing = tmp_path / "no-such-weights"
    params = AuditParams(scale_backend=backend, scale_weights=str(missing))
    with pytest.raises(ConfigError, match="scale_weights") as error:
        object_scale.create(backend, params)
    assert str(missing) in str(error.value) and "download" in str(error.value)


def test_yolo_world_without_ultralytics_says_what_to_install(tmp_path):
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ultralytics is installed: the missing-package path cannot be exercised")
    weights = tmp_path / "yolov8s-worldv2.pt"
    weights.write_bytes(b"")
    with pytest.raises(ConfigError, match="ultralytics"):
        object_scale.create("yolo-world", AuditParams(scale_backend="yolo-world",
                                                      scale_weights=str(weights)))
