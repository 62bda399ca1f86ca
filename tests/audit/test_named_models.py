"""The audit's named models: DINOv2 / CLIP embedders, ConvNeXt-B by the class table, CLIP
zero-shot beside it, the calibrated duplicate threshold, leaks of rows that are not test images,
one OWL pass for object and person boxes, and the rehearsal's tiny builders.

Every model here is a tiny random one saved to disk and loaded back the production way (local
folder, the network cut); what is checked is the loading, wiring and bookkeeping, not accuracy.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synreal.audit import AuditParams, audit_dataset, consistency, near_duplicates, tiny
from synreal.audit.classes import format_classes, imagenet_groups, object_phrases
from synreal.audit.embedders import create_embedder, describe
from synreal.audit.run import audit_models
from synreal.errors import ConfigError
from tests.audit.conftest import pixel_features

FAST = dict(kid_subsets=5, kid_subset_size=20, fid_resamples=10, diversity_resamples=10)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Every tiny audit model the rehearsal builds, by audit key."""
    root = tmp_path_factory.mktemp("audit-models")
    keys = [*tiny.REHEARSAL_PARAMS, *tiny.REHEARSAL_EMBEDDING]
    for key in keys:
        tiny.build_rehearsal_audit_model(key, {}, root / key)
    return {key: str(root / key) for key in keys}


def test_the_rehearsal_builds_a_model_for_every_audit_weights_key(models):
    assert Path(models["fid_weights"]).is_file()  # the FID weights are one file
    for key in set(models) - {"fid_weights"}:
        assert Path(models[key]).is_dir(), key
    with pytest.raises(ConfigError, match="no tiny model"):
        tiny.build_rehearsal_audit_model("unknown_weights", {}, Path(models["fid_weights"]))


@pytest.mark.parametrize("name", ["dinov2", "clip"])
def test_semantic_embedders_load_offline_and_embed(models, toy_sets, offline, name):
    embed = create_embedder(name, None, models["embedder_weights" if name == "dinov2"
                                               else "clip_weights"])
    paths = list(toy_sets["real"]["path"].head(3))
    features = embed(paths)
    assert features.shape == (3, 32) and np.isfinite(features).all()
    np.testing.assert_allclose(embed(paths[:1]), features[:1], rtol=1e-4, atol=1e-5)
    assert offline == []


def test_dinov2_weights_of_another_architecture_are_one_sentence(models, tmp_path):
    folder = tmp_path / "dinov2"
    tiny.build_dinov2(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 64,
                                                    "num_attention_heads": 4}))
    with pytest.raises(ConfigError, match="embedder_weights .*(do not match|could not be "
                                          "loaded)"):
        create_embedder("dinov2", None, str(folder))
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "vit"}))
    with pytest.raises(ConfigError, match="model_type 'vit', not 'dinov2'"):
        create_embedder("dinov2", None, str(folder))


def test_timm_folder_of_another_architecture_is_refused(models, tmp_path):
    with pytest.raises(ConfigError, match="architecture 'convnext_base', not consistency_model"):
        consistency.load_timm_classifier("resnet50", models["consistency_weights"])


def test_convnext_consistency_measures_only_the_classes_imagenet_covers(models, toy_sets):
    # the Pet breeds: Bengal has no ImageNet class, Persian and Siamese do
    names = ["Bengal", "Persian", "Siamese"]
    frame = toy_sets["real"].head(6).assign(label_name=names * 2)
    params = AuditParams(consistency_backend="timm",
                         consistency_weights=models["consistency_weights"], batch_size=4)
    result = consistency.class_consistency(params, consistency.ConsistencyInputs(frame, names))
    assert result.not_covered == ["Bengal"]
    assert np.isnan(result.consistent[frame["label_name"] == "Bengal"]).all()
    covered = result.consistent[frame["label_name"] != "Bengal"]
    assert set(np.unique(covered)) <= {0.0, 1.0}
    assert set(result.predicted[frame["label_name"] != "Bengal"]) <= {1, 2}  # never Bengal


def test_the_class_table_covers_every_pet_and_afhq_class_with_an_animal_phrase():
    for fmt in ("oxford_pet", "afhq"):
        for name in format_classes(fmt):
            phrases = object_phrases(name)
            assert phrases and all(p.startswith("a photo of") for p in phrases), name
    assert "a photo of a wild" not in object_phrases("wild")
    assert any("cat" in p for p in object_phrases("Bengal"))
    assert imagenet_groups(["Persian", "beagle", "Bengal"]) == [[283], [162], []]


def test_a_class_without_a_phrase_names_the_class(tmp_path):
    table = tmp_path / "classes.json"
    table.write_text(json.dumps({"classes": {"cat": {"phrases": [], "imagenet": [281]}}}))
    with pytest.raises(ConfigError, match="no detector phrase for class 'cat'"):
        object_phrases("cat", table)
    with pytest.raises(ConfigError, match="no phrases for class 'dog'"):
        object_phrases("dog", table)


def test_calibrated_threshold_is_the_quantile_of_cross_half_nearest_neighbours():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(101, 8))
    found = near_duplicates.calibrate_threshold(x, 0.9, seed=3)
    order = np.random.default_rng(3).permutation(101)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = (unit[order[:50]] @ unit[order[50:]].T).max(axis=1)  # brute force
    assert found["n_pairs"] == 50
    assert found["threshold"] == pytest.approx(np.quantile(sims, 0.9), abs=1e-5)
    assert np.isnan(near_duplicates.calibrate_threshold(x[:1], 0.9)["threshold"])


def test_the_test_split_audited_against_itself_has_no_leaks(toy_sets, tmp_path):
    real = toy_sets["real"].head(24).copy()
    real.loc[real.index[::3], "split"] = "test"
    test = real[real["split"] == "test"]
    params = AuditParams(consistency_backend="none", duplicate_threshold=0.999, **FAST)
    summary = audit_dataset(params, real, tmp_path, test_manifest=test, embed=pixel_features,
                            name="real")
    dups = summary["near_duplicates"]
    assert dups["leaks"] == 0 and summary["leakage_warning"] is None
    assert dups["exact_test"] == 0  # the test rows' own files are not counted either
    assert dups["leak_skipped_test_rows"] == len(test)
    assert dups["leak_checked"] == len(real) - len(test)
    assert dups["source"] == "configured" and dups["threshold"] == 0.999
    table = pd.read_parquet(tmp_path / "audit.parquet")
    assert table["test_leak"].isna().all()
    assert table.loc[real["split"].to_numpy() == "test", "test_nearest_similarity"].isna().all()


def test_every_model_is_named(models):
    params = AuditParams(scale_backend="owlvit", scale_model_id="google/owlv2-base-patch16",
                         scale_weights=models["scale_weights"], person_backend="owlvit",
                         person_weights=models["scale_weights"], consistency_backend="timm",
                         consistency_weights=models["consistency_weights"],
                         clip_weights=models["clip_weights"], fid_features="inception",
                         fid_weights=models["fid_weights"])
    named = audit_models(params, describe("dinov2", "facebook/dinov2-base"), True)
    assert "convnext_base" in named["consistency"]
    assert "timm/convnext_base.fb_in1k" in named["consistency"]
    assert "laion/CLIP-ViT-B-32" in named["consistency_clip"]
    assert "Inception-v3" in named["fid"]
    assert "facebook/dinov2-base" in named["embedding"]
    assert "owlv2" in named["object_scale"] and "OWL" in named["person_boxes"]
    demo = audit_models(AuditParams(), describe("colour-layout", None), False)
    assert "demo only" in demo["embedding"] and "not Inception" in demo["fid"]
    assert demo["consistency_clip"] is None and demo["person_blocking"] == "not measured"


def test_object_scale_and_person_boxes_share_one_owl_forward(models, monkeypatch):
    from synreal.audit import object_scale
    from synreal.audit import person_blocking as blocking
    from synreal.audit.owlvit import PERSON_QUERY, OwlVitDetector

    calls = []
    original = OwlVitDetector.detect

    def counted(self, images, queries, threshold):
        calls.append(queries[0])
        return original(self, images, queries, threshold)

    monkeypatch.setattr(OwlVitDetector, "detect", counted)
    params = AuditParams(scale_backend="owlvit", scale_weights=models["scale_weights"],
                         person_backend="owlvit", person_weights=models["scale_weights"],
                         detection_threshold=0.0, person_threshold=0.0)
    finder = object_scale.create("owlvit", params)
    persons = blocking.create("owlvit", params)
    rows = pd.DataFrame({"label_name": ["Bengal", "wild"]})
    rng = np.random.default_rng(0)
    for _ in range(2):  # two batches: the second is never served the first's detections
        images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(2)]
        boxes = finder.boxes(images, rows)
        found = persons.persons(images, rows)
        assert np.isfinite(boxes).all() and all(len(p) for p in found)
    assert len(calls) == 2
    assert PERSON_QUERY in calls[0] and "a photo of a Bengal cat" in calls[0]
    assert "a photo of a tiger" in calls[0]
