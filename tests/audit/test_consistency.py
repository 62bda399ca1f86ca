import json

import numpy as np
import pandas as pd
import pytest

from synreal.audit import consistency
from synreal.audit.params import AuditParams
from synreal.errors import ConfigError, DataError
from tests.audit.conftest import crop_histograms


def test_rates_and_confusion_on_a_hand_made_example():
    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 0, 1, 1, 0])
    rate, per_class, confusion = consistency.rates(truth, predicted, ["a", "b", "c"])
    assert rate == pytest.approx(4 / 6)
    assert per_class == {"a": pytest.approx(2 / 3), "b": 1.0, "c": 0.0}
    assert confusion.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_probe_on_real_recovers_the_injected_confusion_rate(cat_sets):
    real, synthetic = cat_sets["real"], cat_sets["synthetic"]
    embed = crop_histograms([real, synthetic])
    names = list(real.drop_duplicates("label_name").sort_values("label")["label_name"])
    inputs = consistency.ConsistencyInputs(synthetic, names, embed(list(synthetic["path"])),
                                           real, embed(list(real["path"])))
    result = consistency.class_consistency(AuditParams(), inputs)
    truth = 1 - synthetic["confused"].mean()  # about 0.7
    assert result.reference_rate > 0.85  # the probe separates real cat breeds
    assert result.rate == pytest.approx(truth, abs=0.1)
    assert result.rate < result.reference_rate - 0.1
    confused = synthetic["confused"].to_numpy()
    assert (result.consistent[confused] == 0).mean() > 0.8  # swaps are caught
    assert result.confusion.sum() == len(synthetic)


def test_probe_on_real_audits_the_real_set_out_of_fold(cat_sets):
    real = cat_sets["real"]
    embed = crop_histograms([real])
    names = list(real.drop_duplicates("label_name").sort_values("label")["label_name"])
    inputs = consistency.ConsistencyInputs(real, names, embed(list(real["path"])))
    result = consistency.class_consistency(AuditParams(), inputs)
    assert result.rate > 0.85 and result.reference_rate == pytest.approx(result.rate)


def test_unknown_audited_class_is_a_data_error():
    with pytest.raises(DataError, match="zebra"):
        consistency.class_codes(["cat", "zebra"], ["cat", "dog"], "the audited manifest")


def test_none_backend_is_not_measured():
    frame = pd.DataFrame({"label_name": ["a"], "path": ["x"]})
    result = consistency.class_consistency(AuditParams(consistency_backend="none"),
                                           consistency.ConsistencyInputs(frame, ["a"]))
    assert result.measured is False and np.isnan(result.consistent).all()


@pytest.mark.parametrize("backend", ["timm", "clip-zeroshot"])
def test_classifier_backends_with_missing_weights_name_the_path(backend, tmp_path):
    missing = tmp_path / "weights.safetensors"
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"classes": {"a": {"phrases": ["a"], "imagenet": [1]}}}))
    params = AuditParams(consistency_backend=backend, consistency_weights=str(missing),
                         class_table=str(mapping))
    frame = pd.DataFrame({"label_name": ["a"], "path": ["x"]})
    with pytest.raises(ConfigError, match="consistency_weights") as error:
        consistency.class_consistency(params, consistency.ConsistencyInputs(frame, ["a"]))
    assert str(missing) in str(error.value)


def test_timm_classifier_from_a_tiny_random_local_model(cat_sets, tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False)
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    names = ["Abyssinian", "Bengal", "Bombay"]
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"classes": {n: {"imagenet": [3 * i, 3 * i + 1]}
                                               for i, n in enumerate(names)}}))
    frame = cat_sets["real"][cat_sets["real"]["label_name"].isin(names)].head(6)
    params = AuditParams(consistency_backend="timm", consistency_model="test_vit",
                         consistency_weights=str(weights), class_table=str(mapping),
                         batch_size=4)
    result = consistency.class_consistency(params,
                                           consistency.ConsistencyInputs(frame, names))
    # the same pooled-softmax rule, computed by hand on the loaded model
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    from PIL import Image

    from synreal.data.manifest import load_rgb
    batch = torch.stack([transform(Image.fromarray(load_rgb(p))) for p in frame["path"]])
    with torch.no_grad():
        probs = torch.softmax(model.eval()(batch), -1).numpy()
    expected = np.stack([probs[:, [3 * i, 3 * i + 1]].sum(1) for i in range(3)], 1).argmax(1)
    assert result.predicted.tolist() == expected.tolist()


def test_timm_weights_of_another_architecture_are_a_clear_error(tmp_path):
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "model.safetensors"
    save_file(timm.create_model("test_vit", pretrained=False).state_dict(), weights)
    with pytest.raises(ConfigError, match="test_resnet"):
        consistency.load_timm_classifier("test_resnet", str(weights))


def test_probe_on_real_with_one_image_of_a_class_is_one_sentence():
    real = pd.DataFrame({"label_name": ["cat", "cat", "dog"], "split": ["train"] * 3,
                         "path": ["a", "b", "c"]})
    inputs = consistency.ConsistencyInputs(real, ["cat", "dog"], np.eye(3, dtype=np.float32))
    with pytest.raises(DataError, match=r"2 labeled non-test images per class.*\['dog'\]"):
        consistency.class_consistency(AuditParams(), inputs)


def _cats(cat_sets, audited):
    real = cat_sets["real"]
    embed = crop_histograms([real, cat_sets[audited]])
    names = list(real.drop_duplicates("label_name").sort_values("label")["label_name"])
    return real, embed, names


def test_probe_on_real_keeps_which_real_images_it_held_out(cat_sets):
    real, embed, names = _cats(cat_sets, "synthetic")
    synthetic = cat_sets["synthetic"]
    x_real = embed(list(real["path"]))
    params = AuditParams()
    result = consistency.class_consistency(params, consistency.ConsistencyInputs(
        synthetic, names, embed(list(synthetic["path"])), real, x_real))
    rows = result.reference_rows
    assert len(rows) == pytest.approx(params.probe_holdout * len(real), abs=1)
    truth = consistency.class_codes(real["label_name"].iloc[rows], names, "held-out rows")
    np.testing.assert_array_equal(result.reference_consistent,
                                  (truth == result.reference_predicted).astype(float))
    assert result.reference_consistent.mean() == pytest.approx(result.reference_rate)
    # the rows are the held-out ones: a probe fitted on all the others predicts them alike
    fit = np.setdiff1d(np.arange(len(real)), rows)
    codes = consistency.class_codes(real["label_name"], names, "real")
    model = consistency._probe(params).fit(x_real[fit], codes[fit])
    np.testing.assert_array_equal(model.predict(x_real[rows]), result.reference_predicted)
    assert result.summary()["reference_n"] == len(rows)


def test_auditing_the_real_set_holds_out_every_non_test_image(cat_sets):
    real, embed, names = _cats(cat_sets, "real")
    real = real.assign(split=np.where(np.arange(len(real)) % 5 == 0, "test", "train"))
    result = consistency.class_consistency(AuditParams(), consistency.ConsistencyInputs(
        real, names, embed(list(real["path"]))))
    np.testing.assert_array_equal(result.reference_rows, np.flatnonzero(real["split"] != "test"))
    np.testing.assert_array_equal(result.reference_consistent,
                                  result.consistent[result.reference_rows])


def test_classifiers_without_a_real_reference_keep_no_reference_rows(monkeypatch):
    frame = pd.DataFrame({"label_name": ["a", "b"], "path": ["x", "y"]})
    monkeypatch.setitem(consistency._BACKENDS, "timm", lambda inputs, params:
                        consistency.Predictions(np.zeros(len(inputs.manifest), np.int64)))
    params = AuditParams(consistency_backend="timm", consistency_weights="unused")
    result = consistency.class_consistency(params,
                                           consistency.ConsistencyInputs(frame, ["a", "b"]))
    assert result.rate == 0.5 and result.reference_rate is None
    assert result.reference_rows is None and result.summary()["reference_n"] is None
