"""probe, knn and retrieval stages on a features file with known structure.

The file is laid out like a ``dino_linear`` extraction of a 4-block backbone: 64 columns,
the last 16 being the ``cls`` view (the last block). Only that block separates the classes;
the other three are noise, so a stage reading the wrong columns scores near chance.
"""

import json

import numpy as np
import pandas as pd
import pytest

from synreal.cli import run_stage
from synreal.data.manifest import write_manifest
from synreal.errors import DataError
from synreal.eval.features_io import read_features, write_features
from synreal.stages.features import FeaturesParams


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("feat")
    rng = np.random.default_rng(0)
    n_per, classes = 12, 4
    centres = rng.normal(size=(classes, 16)) * 3
    rows = []
    for split, n in (("trainval", n_per), ("test", n_per // 2)):
        for c in range(classes):
            for i in range(n):
                rows.append((f"{split}/{c}/{i}", split, c, f"class{c}"))
    frame = pd.DataFrame(rows, columns=["id", "split", "label", "label_name"])
    last = centres[frame["label"]] + rng.normal(size=(len(frame), 16))
    emb = np.hstack([rng.normal(size=(len(frame), 48)) * 10, last]).astype(np.float32)
    from PIL import Image

    paths = []
    for i, row in frame.iterrows():
        path = root / f"{i}.png"
        Image.new("RGB", (8, 8), (row.label * 60, 0, 0)).save(path)
        paths.append(str(path))
    frame["path"] = paths
    write_features(root / "features.parquet", emb, frame["id"], frame["split"], frame["label"],
                   frame["label_name"], frame["path"],
                   {"checkpoint_key": "abc", "protocol": "dino_linear", "manifest_hash": "h",
                    "model": "vit_test", "views": FeaturesParams().layout(64, pooled=False)})
    manifest = frame.assign(sha256=[f"h{i}" for i in range(len(frame))], relpath=frame["id"])
    write_manifest(manifest, root / "manifest.parquet")
    return {"features": str(root / "features.parquet"),
            "manifest": str(root / "manifest.parquet")}


def _run(stage, params, inputs, out):
    run_stage(stage, {"stage": stage, "params": params, "inputs": inputs}, out)
    return json.loads((out / "metrics.json").read_text())


def test_views_are_the_layouts_columns(inputs):
    features = read_features(inputs["features"])
    assert features.view("cls").embeddings.shape[1] == 16
    np.testing.assert_array_equal(features.view("cls").embeddings, features.embeddings[:, 48:])
    assert features.view("dino_linear").embeddings.shape[1] == 64
    assert features.views()["cls"]["description"] == "last-block CLS token (16-d)"


def test_probe_stage_separable_clusters(inputs, tmp_path):
    metrics = _run("probe", {"steps": 100, "bootstrap_resamples": 200, "dino_epochs": 30,
                             "features": "cls"}, inputs, tmp_path / "p")
    assert metrics["top1"]["estimate"] > 0.9
    assert metrics["top1"] == metrics["dino_linear_top1"]
    assert metrics["logistic_top1"]["estimate"] > 0.9
    assert metrics["protocol"].startswith("linear probe dino_linear: DINO eval_linear")
    assert "vit_test last-block CLS token (16-d)" in metrics["protocol"]
    assert set(metrics["protocols"]) == {"dino_linear", "logistic"}
    assert metrics["top1"]["lo"] <= metrics["top1"]["estimate"] <= metrics["top1"]["hi"]
    assert (tmp_path / "p" / "confusion.png").is_file()
    per_item = pd.read_parquet(tmp_path / "p" / "per_item.parquet")
    assert len(per_item) == 4 * 6 and per_item["id"].str.startswith("test/").all()


def test_knn_and_retrieval_stages(inputs, tmp_path):
    knn = _run("knn", {"ks": [5, 20, 1000], "bootstrap_resamples": 200}, inputs, tmp_path / "k")
    assert knn["top1_k5"]["estimate"] > 0.9 and knn["skipped_ks"] == [1000]
    assert "T=0.07" not in knn["protocol"] and "exp(cosine / 0.07)" in knn["protocol"]
    assert "vit_test last-block CLS token (16-d)" in knn["protocol"]
    ret = _run("retrieval", {"bootstrap_resamples": 200, "examples": 2}, inputs, tmp_path / "r")
    assert ret["map"]["estimate"] > 0.8 and ret["n_queries"] == 24
    assert "last-block CLS token (16-d)" in ret["protocol"]
    assert (tmp_path / "r" / "retrieval_examples.png").is_file()


def test_leaked_test_image_fails_the_probe(inputs, tmp_path):
    manifest = pd.read_parquet(inputs["manifest"])
    test_hash = manifest.loc[manifest["split"] == "test", "sha256"].iloc[0]
    manifest.loc[0, "sha256"] = test_hash  # a training image that is a test image's file
    write_manifest(manifest, tmp_path / "leaky.parquet")
    with pytest.raises(DataError, match="leak|test"):
        _run("probe", {"steps": 10}, {**inputs, "manifest": str(tmp_path / "leaky.parquet")},
             tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_missing_split_is_a_clear_error(inputs, tmp_path):
    with pytest.raises(DataError, match="no rows in split 'train'"):
        _run("knn", {"train_split": "train"}, inputs, tmp_path / "k")


def test_knn_reads_its_view_not_the_whole_embedding(inputs, tmp_path):
    """The noise blocks drown the class signal: the concatenation scores far below cls."""
    cls = _run("knn", {"ks": [5], "bootstrap_resamples": 10}, inputs, tmp_path / "c")
    whole = _run("knn", {"ks": [5], "bootstrap_resamples": 10, "features": "dino_linear"},
                 inputs, tmp_path / "w")
    assert cls["top1_k5"]["estimate"] > whole["top1_k5"]["estimate"] + 0.2


def test_a_view_the_file_lacks_is_one_clear_sentence(inputs, tmp_path):
    features = read_features(inputs["features"])
    path = tmp_path / "cls_only.parquet"
    write_features(path, features.view("cls").embeddings, *(features.column(c) for c in
                   ("id", "split", "label", "label_name", "path")),
                   {"checkpoint_key": "abc", "protocol": "cls", "manifest_hash": "h"})
    with pytest.raises(DataError, match=r"evaluation.probe.features is 'dino_linear' but .* "
                                        r"offers only \['cls'\]"):
        _run("probe", {"steps": 10}, {**inputs, "features": str(path)}, tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_plan_reads_each_protocols_view(micro_config):
    from synreal.config import validate_config
    from synreal.plan import build_plan

    plan = build_plan(validate_config(micro_config))
    jobs = next(iter(plan.evaluations.values()))
    assert jobs["features"].params["protocol"] == "dino_linear"
    assert jobs["knn"].params["features"] == "cls"
    assert jobs["retrieval"].params["features"] == "cls"
    assert jobs["probe"].params["features"] == "dino_linear"
    assert jobs["probe"].params["protocols"] == ["dino_linear", "logistic"]


def test_a_view_the_extraction_does_not_write_fails_the_plan(micro_config):
    from synreal.config import validate_config
    from synreal.errors import ConfigError
    from synreal.plan import build_plan

    micro_config["evaluation"]["features"] = {"protocol": "cls"}
    with pytest.raises(ConfigError, match=r"^evaluation.probe.features is 'dino_linear' but "
                                          r"evaluation.features.protocol 'cls' writes only "
                                          r"\['cls'\]; set .*\.$"):
        build_plan(validate_config(micro_config))
    micro_config["evaluation"]["probe"] = {"features": "cls"}
    build_plan(validate_config(micro_config))  # every stage reads what is written


def test_train_on_images_plans_dinos_augmented_probe_in_the_probes_place(micro_config):
    """``evaluation.probe.train_on: images``: each checkpoint's probe is a probe_images job that
    reads the checkpoint, the dataset and the features job's centre crops; every table reads
    it where it read the probe; its settings are the probe's and the extraction's."""
    from synreal.config import validate_config
    from synreal.plan import build_plan

    micro_config["evaluation"]["probe"] = {"train_on": "images", "protocols": ["dino_linear"],
                                           "dino_epochs": 7}
    plan = build_plan(validate_config(micro_config))
    assert plan.keys("probe") == [] and plan.keys("probe_images")
    for jobs in plan.evaluations.values():
        probe, features = jobs["probe"], jobs["features"]
        assert probe.stage == "probe_images"
        assert probe.upstream["features"] == features.ref
        assert probe.inputs["checkpoint"] == plan.job("pretrain", probe.upstream[
            "checkpoint"].split("/")[1]).out_dir
        assert probe.params["dino_epochs"] == 7
        assert probe.params["n_last_blocks"] == features.params["n_last_blocks"]
    tables = {name: json.dumps(job.params) for name, job in plan.tables.items()}
    assert any("results/probe_images/" in text for text in tables.values())
    assert not any("results/probe/" in text for text in tables.values())


def test_train_on_images_with_the_logistic_probe_is_one_sentence(micro_config):
    from synreal.config import validate_config
    from synreal.errors import ConfigError
    from synreal.plan import build_plan

    micro_config["evaluation"]["probe"] = {"train_on": "images"}
    with pytest.raises(ConfigError, match=r"train_on: images trains DINO's linear probe only; "
                                          r"set protocols: \[dino_linear\]"):
        build_plan(validate_config(micro_config))
