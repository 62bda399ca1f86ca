"""The full study's audit, as the plan resolves it: no measure on colour-layout, every model
named and given, and a rehearsal that builds a tiny model for every audit weights key."""

from pathlib import Path

import pytest
import yaml

from synreal.audit.embedders import describe
from synreal.audit.params import AuditParams
from synreal.audit.preflight import audit_weights, check_study
from synreal.audit.run import audit_models
from synreal.config import REPO_ROOT, validate_config
from synreal.errors import ConfigError
from synreal.plan import build_plan
from synreal.stages.audit import EmbedderParams

STUDY = REPO_ROOT / "config" / "studies" / "afhq_pets.yaml"


def _study() -> dict:
    return yaml.safe_load(STUDY.read_text())


@pytest.fixture(scope="module")
def audit_jobs():
    plan = build_plan(validate_config(_study(), check_paths=False))
    assert plan.audits, "the full study audits its datasets"
    return plan.audits


def test_no_full_study_measure_resolves_to_colour_layout(audit_jobs):
    for name, job in audit_jobs.items():
        params, embedding = AuditParams(**job.params["audit"]), job.params["embedding"]
        assert embedding["embedder"] == "dinov2", name  # diversity, duplicates, leaks
        assert params.fid_features == "inception", name  # FID as published
        assert params.consistency_backend == "timm", name  # SynBench's ConvNeXt-B
        assert params.clip_weights, name  # CLIP zero-shot beside it
        assert params.duplicate_threshold is None, name  # calibrated on real data
        assert params.scale_backend == "owlvit" and params.person_backend == "owlvit", name
        models = audit_models(params, describe(embedding["embedder"],
                                               embedding["embedder_model"]), True)
        assert not any("colour-layout" in str(v) for v in models.values()), name


def test_every_model_of_the_full_study_is_named(audit_jobs):
    job = next(iter(audit_jobs.values()))
    params, embedding = AuditParams(**job.params["audit"]), job.params["embedding"]
    models = audit_models(params, describe(embedding["embedder"], embedding["embedder_model"]),
                          True)
    assert "facebook/dinov2-base" in models["embedding"]
    assert "convnext_base" in models["consistency"]
    assert "timm/convnext_base.fb_in1k" in models["consistency"]
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in models["consistency_clip"]
    assert "Inception-v3" in models["fid"]
    assert "google/owlv2-base-patch16-ensemble" in models["object_scale"]
    assert "google/owlv2-base-patch16-ensemble" in models["person_boxes"]
    for key in params.selected_models():  # every model the study selects, it also gives
        assert getattr(params, key), key
    assert embedding["embedder_weights"]


@pytest.mark.parametrize("key, value, match", [
    ("consistency_weights", None, "consistency_backend 'timm' needs a model"),
    ("fid_weights", None, "fid_features 'inception' needs a model"),
    ("scale_weights", None, "scale_backend 'owlvit' needs a model"),
])
def test_a_measure_without_its_model_is_one_sentence_at_plan_time(key, value, match):
    study = _study()
    study["audit"]["params"][key] = value
    with pytest.raises(ConfigError, match=match) as error:
        build_plan(validate_config(study, check_paths=False))
    assert str(error.value).count(". ") == 0  # one sentence


def test_an_embedder_without_weights_is_one_sentence_at_plan_time():
    study = _study()
    del study["audit"]["embedding"]["embedder_weights"]
    with pytest.raises(ConfigError, match="embedder 'dinov2' needs a model"):
        build_plan(validate_config(study, check_paths=False))
    with pytest.raises(ConfigError, match="choose one of"):
        EmbedderParams(embedder="inception")


def test_the_rehearsal_builds_tiny_weights_for_every_audit_key_and_they_fit(tmp_path):
    from synreal.rehearsal import rehearsal_config
    from synreal.rehearsal.fixtures import prepare_weights, weight_folders

    config = rehearsal_config(_study())
    named = {w.where: w.path for w in audit_weights(config)}
    wanted = {where: path for path, (_, where) in weight_folders(config).items()}
    for where, path in named.items():
        assert where in wanted or path in wanted.values(), where  # scale = person folder
    assert "audit.embedding.embedder_weights" in named and "audit.params.fid_weights" in named
    prepare_weights({"audit": config["audit"]}, tmp_path)
    assert (tmp_path / config["audit"]["params"]["fid_weights"]).is_file()
    check_study(config, tmp_path)  # every tiny model is of the architecture its key names
    prepare_weights({"audit": config["audit"]}, tmp_path)  # stamped: written once


def test_a_class_without_a_detector_phrase_is_one_sentence(tmp_path):
    table = tmp_path / "classes.json"
    table.write_text('{"formats": {"afhq": ["cat", "dog", "wild"]}, "classes": {'
                     '"cat": {"phrases": ["a photo of a cat"], "imagenet": [281]}, '
                     '"dog": {"phrases": ["a photo of a dog"], "imagenet": [151]}, '
                     '"wild": {"phrases": [], "imagenet": []}}}')
    study = _study()
    study["audit"]["params"]["class_table"] = str(table)
    with pytest.raises(ConfigError, match="no detector phrase for class 'wild'"):
        check_study(study, Path("/nonexistent"))


def test_weights_of_another_architecture_are_one_sentence(tmp_path):
    from synreal.audit import tiny

    study = _study()
    tiny.build_convnext(tmp_path / study["audit"]["embedding"]["embedder_weights"])
    study["audit"]["params"] = {"scale_backend": "foreground"}
    with pytest.raises(ConfigError, match=r"audit.embedding.embedder_weights: .* model_type "
                                          r"None, not 'dinov2'"):
        check_study(study, tmp_path)


def test_a_passed_weights_check_is_remembered_until_the_weights_change(tmp_path, monkeypatch):
    """The Snakefile checks the audit weights on every `snakemake` call (importing timm,
    open_clip and transformers: seconds); a check that passed is not made again while the
    weights and the checker are unchanged, and a failure is never remembered."""
    import shutil

    from synreal.audit import preflight, tiny
    from synreal.rehearsal import rehearsal_config
    from synreal.rehearsal.fixtures import prepare_weights

    config = rehearsal_config(_study())
    prepare_weights({"audit": config["audit"]}, tmp_path)
    memo = tmp_path / ".snakemake" / "checked.json"
    made = []
    checked = preflight._checked
    monkeypatch.setattr(preflight, "_checked", lambda w, p: made.append(w.where) or checked(w, p))
    check_study(config, tmp_path, memo)
    distinct = {(w.model, w.arch, w.path) for w in audit_weights(config)}
    assert len(made) == len(distinct)  # a folder two keys share (scale, person) once
    made.clear()
    check_study(config, tmp_path, memo)
    assert made == []
    check_study(config, tmp_path)  # no memo (the doctor): every check made
    assert len(made) == len(audit_weights(config))
    made.clear()
    import importlib.metadata

    real_version = importlib.metadata.version
    with monkeypatch.context() as patch:  # an upgraded model library: checked again
        patch.setattr(importlib.metadata, "version",
                      lambda name: "99.0" if name == "timm" else real_version(name))
        preflight._checker.cache_clear()  # versions are read once per process
        check_study(config, tmp_path, memo)
    preflight._checker.cache_clear()
    assert len(made) == len(distinct)

    embedder = tmp_path / config["audit"]["embedding"]["embedder_weights"]
    shutil.rmtree(embedder)
    tiny.build_convnext(embedder)  # same folder, another architecture
    made.clear()
    for _ in range(2):  # the failure is found, and found again
        with pytest.raises(ConfigError, match="audit.embedding.embedder_weights: .* model_type"):
            check_study(config, tmp_path, memo)
    assert made.count("audit.embedding.embedder_weights") == 2
