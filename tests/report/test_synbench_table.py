"""The written synbench table names every model and protocol its audits used, gives the
object detector's not-found share, the test leaks and the threshold that found them, and says
where the demo-only colour-layout embedding was used.

The audits run end to end with the study's model classes (ConvNeXt-B family from a timm hub
folder, open_clip, Inception-v3 FID, DINOv2), tiny and random, loaded the production way.
"""

import re

import pandas as pd
import pytest

from synreal.audit import AuditParams, audit_dataset, tiny
from synreal.audit.embedders import colour_layout, create_embedder, describe
from synreal.audit.inception import inception_embedder
from synreal.report.builders import AUDIT_CELL_RESAMPLES, synbench_table
from synreal.report.metrics import rate_cell
from tests.audit.conftest import NARROW, WIDE, toy_manifest

FAST = dict(kid_subsets=5, kid_subset_size=10, fid_resamples=10, diversity_resamples=10,
            batch_size=16)
CI_CELL = re.compile(r"^-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]$")


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """A synthetic set with one planted test image, audited with the named models and with
    the demo's colour-layout."""
    root = tmp_path_factory.mktemp("synbench")
    models = {key: root / key for key in ("consistency_weights", "clip_weights",
                                          "fid_weights", "embedder_weights")}
    for key, path in models.items():
        tiny.build_rehearsal_audit_model(key, {}, path)
    real = toy_manifest(root / "real", 3, WIDE, seed=1)
    real.loc[real.index[::3], "split"] = "test"
    test = real[real["split"] == "test"]
    synthetic = pd.concat([toy_manifest(root / "syn", 2, NARROW, seed=2),
                           test.iloc[[0]].assign(id="leak", split="train")], ignore_index=True)
    named = AuditParams(consistency_backend="timm",
                        consistency_weights=str(models["consistency_weights"]),
                        clip_weights=str(models["clip_weights"]), fid_features="inception",
                        fid_weights=str(models["fid_weights"]), **FAST)
    out = {"named": root / "named", "demo": root / "demo"}
    audit_dataset(named, synthetic, out["named"], reference_manifest=real, test_manifest=test,
                  embed=create_embedder("dinov2", None, str(models["embedder_weights"])),
                  fid_embed=inception_embedder(str(models["fid_weights"]), 16),
                  name="syn", embed_name=describe("dinov2", "facebook/dinov2-base"))
    audit_dataset(AuditParams(consistency_backend="none", **FAST), synthetic, out["demo"],
                  reference_manifest=real,
                  test_manifest=test, embed=colour_layout, name="syn",
                  embed_name=describe("colour-layout", None))
    return out


def _synbench(audits, out_dir, names=("named", "demo")):
    synbench_table({"study": "toy", "audits": {n: str(audits[n]) for n in names}}, out_dir)
    table = pd.read_csv(out_dir / "synbench.csv", dtype=str, keep_default_na=False)
    return table.set_index("dataset"), (out_dir / "synbench.md").read_text().splitlines()[0]


def _summary(folder):
    import json

    return json.loads((folder / "summary.json").read_text())


def test_the_caption_names_every_model_and_protocol(audits, tmp_path):
    _, caption = _synbench(audits, tmp_path, ("named",))
    for name in ("DINOv2 CLS token (facebook/dinov2-base)", "convnext_base",
                 "timm/convnext_base.fb_in1k", "CLIP zero-shot (laion/CLIP-ViT-B-32",
                 "Inception-v3 pool3 2048-d", "object detector: weights-free foreground box",
                 "person boxes: not measured"):
        assert name in caption, name
    assert "colour-layout" not in caption  # no demo embedding in this table
    # ImageNet has no Abyssinian, Bengal, Bombay, British Shorthair or Shiba Inu class
    assert "no class for Abyssinian, Bengal, Bombay, British_Shorthair, shiba_inu" in caption


def test_colour_layout_is_called_demo_only_and_non_semantic(audits, tmp_path):
    _, caption = _synbench(audits, tmp_path)
    assert "demo-only, non-semantic embedding" in caption
    assert "not comparable with published FIDs" in caption


def test_leaks_and_their_threshold_are_printed_beside_the_counts(audits, tmp_path):
    table, caption = _synbench(audits, tmp_path)
    for name in ("named", "demo"):
        dups = _summary(audits[name])["near_duplicates"]
        assert table.loc[name, "test leaks"] == str(dups["leaks"])
        assert dups["leaks"] >= 1  # the planted test image, at least
        assert table.loc[name, "dup/leak threshold (cosine)"] == (
            f"{dups['threshold']:.4f} (calibrated)")
        assert f"{dups['threshold']:.4f}: {dups['source']}" in caption
        assert "two disjoint random halves of real" in dups["source"]
    # the caption's promised leakage warning names every leaking set and its count
    leaks = {name: _summary(audits[name])["near_duplicates"]["leaks"] for name in ("named", "demo")}
    assert (f"WARNING: test leaks in named ({leaks['named']}), demo ({leaks['demo']}):"
            in caption), caption
    columns = list(table.columns)
    assert columns.index("dup/leak threshold (cosine)") == columns.index("test leaks") + 1


def test_object_not_found_share_and_clip_consistency_columns(audits, tmp_path):
    table, _ = _synbench(audits, tmp_path)
    summary = _summary(audits["named"])
    rate = summary["scale"]["not_found_rate"]
    assert table.loc["named", "object not found %"] == f"{100 * rate:.1f}"
    frame = pd.read_parquet(audits["named"] / "audit.parquet")
    expected = rate_cell(frame["clip_consistent"], AUDIT_CELL_RESAMPLES, 0)
    assert table.loc["named", "CLIP consistency % [CI]"] == str(expected)
    assert CI_CELL.match(str(expected))
    assert table.loc["demo", "CLIP consistency % [CI]"] == "not measured"
