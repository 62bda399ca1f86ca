import json

import numpy as np
import pandas as pd
import pytest

from synreal.audit import (
    AUDIT_FILE,
    REFERENCE_CONSISTENCY_FILE,
    SUMMARY_FILE,
    AuditParams,
    audit_dataset,
)
from tests.audit.conftest import pixel_features

FAST = dict(kid_subsets=5, kid_subset_size=50, fid_resamples=40)


@pytest.fixture(scope="module")
def audited(toy_sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    params = AuditParams(person_backend="boxes-from-column", **FAST)
    real = toy_sets["real"].copy()
    real.loc[real.index[::8], "split"] = "test"  # held out: never fits the probe
    test = real[real["split"] == "test"]
    synthetic = pd.concat([toy_sets["synthetic"], test.iloc[[3]].assign(id="leak")],
                          ignore_index=True)  # one test image copied into the set
    summary = audit_dataset(params, synthetic, out, reference_manifest=real,
                            test_manifest=test, embed=pixel_features, name="synthetic")
    return out, summary


def test_outputs_are_written(audited):
    out, summary = audited
    table = pd.read_parquet(out / AUDIT_FILE)
    assert len(table) == summary["n_images"]
    for column in ("brightness_lstar", "scale_area_ratio", "person_blocked", "consistent",
                   "blank", "corrupt", "dup_nearest_similarity", "test_nearest_similarity"):
        assert column in table
    assert json.loads((out / SUMMARY_FILE).read_text())["dataset"] == "synthetic"
    for figure in ("scale.png", "brightness.png", "person_blocking.png",
                   "consistency_confusion.png"):
        assert (out / figure).stat().st_size > 0


def test_the_narrow_generator_has_narrower_brightness_and_scale(audited):
    _, summary = audited
    for measure in ("brightness", "scale"):
        ours, real = summary[measure], summary["reference"][measure]
        assert ours["iqr"] < 0.7 * real["iqr"]
        assert ours["q95"] - ours["q05"] < 0.7 * (real["q95"] - real["q05"])


def test_person_blocking_found_in_real_and_absent_in_synthetic(audited):
    _, summary = audited
    assert summary["reference"]["person_blocking"]["rate"] > 0.1
    assert summary["person_blocking"]["rate"] == 0.0


def test_leaked_test_image_raises_the_warning(audited):
    out, summary = audited
    assert summary["near_duplicates"]["test_matches"] >= 1
    assert summary["leakage_warning"] and "test" in summary["leakage_warning"]
    table = pd.read_parquet(out / AUDIT_FILE).set_index("id")
    assert table.loc["leak", "test_nearest_similarity"] > 0.999
    assert summary["fid"]["fid"] > 0
    assert summary["reference"]["n_images"] == 192 - 24  # test rows excluded


def test_no_person_detector_reports_not_measured(toy_sets, tmp_path):
    rows = toy_sets["synthetic"].head(12)
    summary = audit_dataset(AuditParams(consistency_backend="none", **FAST), rows, tmp_path)
    assert summary["person_blocking"] == {"measured": False, "rate": None,
                                          "overlap_threshold": 0.1}
    table = pd.read_parquet(tmp_path / AUDIT_FILE)
    assert table["person_blocked"].isna().all()
    assert json.loads((tmp_path / SUMMARY_FILE).read_text())["person_blocking"]["rate"] is None


def test_corrupt_and_blank_images_are_flagged_not_fatal(toy_sets, tmp_path):
    from PIL import Image

    rows = toy_sets["synthetic"].head(4).copy()
    bad, black = tmp_path / "bad.png", tmp_path / "black.png"
    bad.write_bytes(b"garbage")
    Image.new("RGB", (64, 64)).save(black)
    rows.loc[rows.index[0], "path"], rows.loc[rows.index[1], "path"] = str(bad), str(black)
    summary = audit_dataset(AuditParams(consistency_backend="none", **FAST), rows,
                            tmp_path / "out", embed=pixel_features)
    table = pd.read_parquet(tmp_path / "out" / AUDIT_FILE)
    assert table["corrupt"].tolist() == [True, False, False, False]
    assert table["blank_black"].iloc[1] == 1.0 and summary["blank"]["black"] == 1
    assert np.isnan(table["brightness_lstar"].iloc[0])


def test_diversity_and_fid_are_stored_with_their_bootstrap_cis(audited):
    out, summary = audited
    stored = json.loads((out / SUMMARY_FILE).read_text())
    for block, key, resamples in (("diversity", "mean_pairwise_cosine_distance",
                                   AuditParams().diversity_resamples),
                                  ("fid", "fid", FAST["fid_resamples"])):
        values = stored[block]
        assert values["ci_low"] < values[key] < values["ci_high"], block
        assert values["resamples"] == resamples
    assert stored["fid"]["bootstrap_bias"] > 0  # repeated images inflate a resample's FID


def test_held_out_real_images_are_written_with_their_consistency(audited, toy_sets):
    out, summary = audited
    held = pd.read_parquet(out / REFERENCE_CONSISTENCY_FILE)
    block = summary["consistency"]
    assert len(held) == block["reference_n"] > 0
    assert held["consistent"].mean() == pytest.approx(block["reference_rate"])
    np.testing.assert_array_equal(held["consistent"],
                                  (held["predicted"] == held["label_name"]).astype(float))
    real_ids = toy_sets["real"]["id"]
    assert set(held["id"]) <= set(real_ids)
    assert set(held["id"]).isdisjoint(real_ids.iloc[::8])  # the fixture's test rows


def test_auditing_the_real_set_writes_every_non_test_images_consistency(toy_sets, tmp_path):
    real = toy_sets["real"].groupby("label").head(6).reset_index(drop=True)
    real.loc[real.index[::6], "split"] = "test"
    summary = audit_dataset(AuditParams(**FAST), real, tmp_path, embed=pixel_features)
    held = pd.read_parquet(tmp_path / REFERENCE_CONSISTENCY_FILE)
    assert list(held["id"]) == list(real.loc[real["split"] != "test", "id"])
    assert held["consistent"].mean() == pytest.approx(summary["consistency"]["reference_rate"])
    assert summary["fid"] is None  # no real counterpart to compare with


def test_no_reference_classifier_writes_no_reference_file(toy_sets, tmp_path):
    rows = toy_sets["synthetic"].head(12)
    audit_dataset(AuditParams(consistency_backend="none", **FAST), rows, tmp_path,
                  embed=pixel_features)
    assert not (tmp_path / REFERENCE_CONSISTENCY_FILE).exists()
