"""probe, knn and retrieval stages on a features file with known structure."""

import json

import numpy as np
import pandas as pd
import pytest

from synreal.cli import run_stage
from synreal.data.manifest import write_manifest
from synreal.errors import DataError
from synreal.eval.features_io import write_features


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
    emb = (centres[frame["label"]] + rng.normal(size=(len(frame), 16))).astype(np.float32)
    from PIL import Image

    paths = []
    for i, row in frame.iterrows():
        path = root / f"{i}.png"
        Image.new("RGB", (8, 8), (row.label * 60, 0, 0)).save(path)
        paths.append(str(path))
    frame["path"] = paths
    write_features(root / "features.parquet", emb, frame["id"], frame["split"], frame["label"],
                   frame["label_name"], frame["path"],
                   {"checkpoint_key": "abc", "protocol": "cls", "manifest_hash": "h"})
    manifest = frame.assign(sha256=[f"h{i}" for i in range(len(frame))], relpath=frame["id"])
    write_manifest(manifest, root / "manifest.parquet")
    return {"features": str(root / "features.parquet"),
            "manifest": str(root / "manifest.parquet")}


def _run(stage, params, inputs, out):
    run_stage(stage, {"stage": stage, "params": params, "inputs": inputs}, out)
    return json.loads((out / "metrics.json").read_text())


def test_probe_stage_separable_clusters(inputs, tmp_path):
    metrics = _run("probe", {"steps": 100, "bootstrap_resamples": 200}, inputs, tmp_path / "p")
    assert metrics["top1"]["estimate"] > 0.9
    assert metrics["top1"]["lo"] <= metrics["top1"]["estimate"] <= metrics["top1"]["hi"]
    assert (tmp_path / "p" / "confusion.png").is_file()
    per_item = pd.read_parquet(tmp_path / "p" / "per_item.parquet")
    assert len(per_item) == 4 * 6 and per_item["id"].str.startswith("test/").all()


def test_knn_and_retrieval_stages(inputs, tmp_path):
    knn = _run("knn", {"ks": [5, 20, 1000], "bootstrap_resamples": 200}, inputs, tmp_path / "k")
    assert knn["top1_k5"]["estimate"] > 0.9 and knn["skipped_ks"] == [1000]
    ret = _run("retrieval", {"bootstrap_resamples": 200, "examples": 2}, inputs, tmp_path / "r")
    assert ret["map"]["estimate"] > 0.8 and ret["n_queries"] == 24
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
