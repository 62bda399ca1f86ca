"""Stage probe_images: DINO's linear probe on augmented images, through the production path.

A random-init checkpoint written by the pretrain stage, its features by the features stage,
then probe_images: what a study with ``evaluation.probe.train_on: images`` runs per checkpoint.
"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synreal.cli import run_stage
from synreal.data.manifest import write_manifest
from synreal.dino.params import DinoParams
from synreal.errors import ConfigError, DataError

TINY = DinoParams(arch="vit_tiny_demo", out_dim=32, epochs=1, batch_size=4, warmup_epochs=0,
                  global_crop_size=16, local_crop_size=8, local_crops_number=2, num_workers=0,
                  eval_resize=18)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """(inputs of a probe_images job, the probe stage's dino_linear params) on 2 classes."""
    from synreal.stages.pretrain import resolve

    root = tmp_path_factory.mktemp("probe_images")
    rng = np.random.default_rng(0)
    rows = []
    for split, n in (("trainval", 10), ("test", 4)):
        for label in (0, 1):
            for i in range(n):
                path = root / f"{split}_{label}_{i}.png"
                pixels = rng.integers(0, 60, (24, 24, 3)) + 150 * label
                Image.fromarray(pixels.astype(np.uint8)).save(path)
                rows.append((f"{split}/{label}/{i}", split, label, f"class{label}", str(path),
                             f"h{len(rows)}"))
    manifest = pd.DataFrame(rows, columns=["id", "split", "label", "label_name", "path",
                                           "sha256"])
    write_manifest(manifest.assign(relpath=manifest["id"]), root / "manifest.parquet")
    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(TINY).items()}
    run_stage("pretrain", {"stage": "pretrain", "params": resolve(
        recipe, {"source": "random_init"}, "control_random_init"), "inputs": {}},
        root / "checkpoint")
    run_stage("features", {"stage": "features", "params": {
        "protocol": "dino_linear", "n_last_blocks": 2, "num_workers": 0, "batch_size": 8},
        "upstream": {"checkpoint": "pretrain/abc"},
        "inputs": {"checkpoint": str(root / "checkpoint"),
                   "manifest": str(root / "manifest.parquet")}}, root / "features")
    return {"checkpoint": str(root / "checkpoint"), "manifest": str(root / "manifest.parquet"),
            "features": str(root / "features" / "features.parquet")}


PARAMS = {"features": "dino_linear", "n_last_blocks": 2, "dino_base_lrs": [1e-2, 1.0],
          "dino_epochs": 3, "dino_batch_size": 8, "bootstrap_resamples": 100,
          "num_workers": 0}


def _run(stage, params, inputs, out):
    run_stage(stage, {"stage": stage, "params": params, "inputs": inputs}, out)
    return json.loads((out / "metrics.json").read_text())


def test_writes_the_probe_stages_outputs_and_names_its_protocol(evaluated, tmp_path):
    metrics = _run("probe_images", PARAMS, evaluated, tmp_path / "a")
    assert metrics["protocol"].startswith("linear probe dino_linear: DINO eval_linear on "
                                          "images:")
    assert "RandomResizedCrop + horizontal flip" in metrics["protocol"]
    assert "train trainval (20), test test (8)" in metrics["protocol"]
    assert metrics["top1"] == metrics["dino_linear_top1"] and metrics["n_train"] == 20
    assert [g["lr"] for g in metrics["selection"]["dino_linear"]] == [1e-2, 1.0]
    per_item = pd.read_parquet(tmp_path / "a" / "per_item.parquet")
    assert len(per_item) == 8 and per_item["id"].str.startswith("test/").all()
    assert (tmp_path / "a" / "confusion.png").is_file()
    again = _run("probe_images", PARAMS, evaluated, tmp_path / "b")  # deterministic
    assert again["top1"] == metrics["top1"] and again["selection"] == metrics["selection"]
    # the probe stage on the same features, same settings, without the augmentation
    fixed = _run("probe", {k: v for k, v in PARAMS.items()
                           if k not in ("n_last_blocks", "avgpool", "num_workers")}
                 | {"protocols": ["dino_linear"]}, evaluated, tmp_path / "c")
    assert fixed["protocol"].startswith("linear probe dino_linear: DINO eval_linear on fixed")
    assert metrics["n_test"] == fixed["n_test"]


def test_blocks_the_backbone_or_the_features_file_lack_are_clear_errors(evaluated, tmp_path):
    with pytest.raises(ConfigError, match="n_last_blocks is 9 but the backbone has"):
        _run("probe_images", {**PARAMS, "n_last_blocks": 9}, evaluated, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(DataError, match="holds 192-d dino_linear features, but this backbone "
                                        "gives 288-d ones with n_last_blocks 3"):
        _run("probe_images", {**PARAMS, "n_last_blocks": 3}, evaluated, tmp_path / "y")
