"""The features stage end to end on a saved backbone: both decode paths give the same file."""

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synreal.cli import run_stage
from synreal.data.manifest import write_manifest
from synreal.dino.backbones import create_backbone
from synreal.dino.checkpoint import Preprocessing, export_backbone
from synreal.errors import ConfigError
from synreal.eval.features_io import read_features


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage")
    torch.manual_seed(0)
    backbone = create_backbone("vit_tiny_demo", 32)
    (root / "ckpt").mkdir()
    export_backbone(root / "ckpt", backbone, backbone,
                    Preprocessing("vit_tiny_demo", 32, 36, 32, (0.5,) * 3, (0.25,) * 3))
    rng, rows = np.random.default_rng(0), []
    for i in range(8):
        split, suffix = ("trainval" if i < 5 else "test"), ("png" if i % 3 == 0 else "jpg")
        path = root / f"{i}.{suffix}"
        Image.fromarray(rng.integers(0, 256, (40 + i, 50, 3), dtype=np.uint8)).save(path)
        rows.append({"id": f"{i}", "path": str(path), "relpath": path.name, "label": i % 2,
                     "label_name": f"c{i % 2}", "split": split, "sha256": f"h{i}",
                     "width": 50, "height": 40 + i, "mode": "RGB", "constant": False})
    write_manifest(pd.DataFrame(rows), root / "manifest.parquet")
    return {"manifest": str(root / "manifest.parquet"), "checkpoint": str(root / "ckpt")}


def test_device_decode_writes_the_same_features(inputs, tmp_path, monkeypatch):
    import synreal.eval.extract as extract

    batches = []
    original = extract.decode_on_device
    monkeypatch.setattr(extract, "decode_on_device",
                        lambda *args: batches.append(len(args[0])) or original(*args))
    embeddings = {}
    for decode in ("cpu", "device"):
        spec = {"stage": "features", "params": {"decode": decode, "num_workers": 0},
                "inputs": inputs, "upstream": {"checkpoint": "pretrain/abc"}}
        run_stage("features", spec, tmp_path / decode)
        features = read_features(tmp_path / decode / "features.parquet")
        assert list(features.column("id")) == [str(i) for i in range(8)]
        embeddings[decode] = features.embeddings
    assert sum(batches) == 8  # the stage passed decode through: device decoded every image
    np.testing.assert_allclose(embeddings["device"], embeddings["cpu"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["vit_tiny_demo", "vit_tiny_demo_avgpool"])
def test_cls_view_of_dino_linear_is_the_cls_extraction(inputs, tmp_path, arch):
    """One dino_linear extraction serves k-NN: its cls view equals a cls-protocol run."""
    torch.manual_seed(1)
    backbone = create_backbone(arch, 32)
    (tmp_path / "ckpt").mkdir()
    export_backbone(tmp_path / "ckpt", backbone, backbone,
                    Preprocessing(arch, 32, 36, 32, (0.5,) * 3, (0.25,) * 3))
    files = {}
    for protocol in ("cls", "dino_linear"):
        spec = {"stage": "features", "params": {"protocol": protocol, "num_workers": 0},
                "inputs": {**inputs, "checkpoint": str(tmp_path / "ckpt")},
                "upstream": {"checkpoint": "pretrain/abc"}}
        run_stage("features", spec, tmp_path / protocol)
        files[protocol] = read_features(tmp_path / protocol / "features.parquet")
    linear = files["dino_linear"]
    assert sorted(linear.views()) == ["cls", "dino_linear"]
    assert linear.view("dino_linear").embeddings.shape[1] == 4 * 96
    assert sorted(files["cls"].views()) == ["cls"]
    np.testing.assert_allclose(linear.view("cls").embeddings, files["cls"].embeddings,
                               rtol=1e-5, atol=1e-5)
    token = "mean patch token" if arch.endswith("avgpool") else "CLS token"
    assert linear.views()["cls"]["description"] == f"last-block {token} (96-d)"
    assert linear.metadata["model"] == arch


def test_more_blocks_than_the_backbone_has_is_one_sentence(inputs, tmp_path):
    spec = {"stage": "features", "params": {"n_last_blocks": 9, "num_workers": 0},
            "inputs": inputs, "upstream": {"checkpoint": "pretrain/abc"}}
    with pytest.raises(ConfigError, match="n_last_blocks is 9 but the backbone has 4 blocks"):
        run_stage("features", spec, tmp_path / "f")
