"""The synbench and cfg tables give every audit number with its bootstrap 95 % CI."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from synreal.audit import REFERENCE_CONSISTENCY_FILE, SUMMARY_FILE, AuditParams, audit_dataset
from synreal.errors import DataError
from synreal.report.builders import AUDIT_CELL_RESAMPLES, cfg_table, synbench_table
from synreal.report.metrics import Cell, rate_cell
from tests.audit.conftest import NARROW, WIDE, pixel_features, toy_manifest

CI_CELL = re.compile(r"^-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]")
CI_COLUMNS = ("class consistency % [CI]", "real reference % [CI]",
              "object scale median [CI] (IQR)", "brightness L* median [CI] (IQR)",
              "person blocking % [CI]", "diversity [CI]", "FID [CI]")
PARAMS = AuditParams(person_backend="boxes-from-column", kid_subsets=5, kid_subset_size=30,
                     fid_resamples=40)


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """Audits of a toy real set and of two toy generators against it."""
    root = tmp_path_factory.mktemp("audits")
    real = toy_manifest(root / "real", 6, WIDE, seed=1)
    out = {"real": root / "audit_real"}
    audit_dataset(PARAMS, real, out["real"], embed=pixel_features, name="real")
    for name, seed in (("syn_a", 2), ("syn_b", 3)):
        synthetic = toy_manifest(root / name, 4, NARROW, seed=seed, confusion=0.3)
        out[name] = root / f"audit_{name}"
        audit_dataset(PARAMS, synthetic, out[name], reference_manifest=real,
                      embed=pixel_features, name=name)
    return out


def _summary(artifact):
    return json.loads((artifact / SUMMARY_FILE).read_text())


def _synbench(audits, out_dir):
    synbench_table({"study": "toy", "audits": {k: str(v) for k, v in audits.items()},
                    "order": list(audits)}, out_dir)
    table = pd.read_csv(out_dir / "synbench.csv", dtype=str, keep_default_na=False)
    return table.set_index("dataset"), (out_dir / "synbench.md").read_text()


def test_every_synbench_measure_has_a_ci(audits, tmp_path):
    table, _ = _synbench(audits, tmp_path)
    for column in CI_COLUMNS:
        measured = table[column].drop("real") if column == "FID [CI]" else table[column]
        assert measured.str.match(CI_CELL).all(), (column, list(measured))
    assert table.loc["real", "FID [CI]"] == "n/a"  # the real set has no counterpart


def test_reference_cell_is_the_rate_of_the_held_out_real_images(audits, tmp_path):
    table, _ = _synbench(audits, tmp_path)
    held = pd.read_parquet(audits["syn_a"] / REFERENCE_CONSISTENCY_FILE)
    expected = rate_cell(held["consistent"], AUDIT_CELL_RESAMPLES, 0)
    # with its size: rows' references differ (out of fold for a real set, held out for a
    # synthetic one), so each cell says how many real images it rests on
    assert table.loc["syn_a", "real reference % [CI]"] == (
        f"{expected} (n {held['consistent'].notna().sum()})")
    rate = _summary(audits["syn_a"])["consistency"]["reference_rate"]
    assert expected.estimate == pytest.approx(rate) and expected.lo < expected.hi


@pytest.mark.parametrize(("column", "block", "key", "digits"), [
    ("diversity [CI]", "diversity", "mean_pairwise_cosine_distance", 3),
    ("FID [CI]", "fid", "fid", 2),
])
def test_diversity_and_fid_cells_show_the_stored_ci(audits, tmp_path, column, block, key,
                                                    digits):
    table, _ = _synbench(audits, tmp_path)
    stored = _summary(audits["syn_a"])[block]
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+", table.loc["syn_a", column])]
    assert numbers == pytest.approx([stored[key], stored["ci_low"], stored["ci_high"]],
                                    abs=10.0 ** -digits)
    assert numbers[1] < numbers[0] < numbers[2]


def test_caption_gives_the_resamples_and_no_ci_free_number(audits, tmp_path):
    _, markdown = _synbench(audits, tmp_path)
    caption = markdown.splitlines()[0]
    assert "point estimate" not in caption and "no CI" not in caption
    assert f"{PARAMS.diversity_resamples} resamples" in caption
    assert f"{PARAMS.fid_resamples} resamples of both sets" in caption


@pytest.mark.parametrize("backend", ["toy", "sdxl"])
def test_cfg_table_gives_diversity_and_fid_with_cis(audits, tmp_path, backend):
    runs = {}
    for scale, name in (("2.5", "syn_a"), ("7.5", "syn_b")):
        generated = tmp_path / "generate" / name
        generated.mkdir(parents=True)
        (generated / "spec.json").write_text(json.dumps({"params": {"backend": backend}}))
        runs[scale] = {"generate": str(generated), "audit": str(audits[name])}
    cfg_table({"study": "toy", "runs": runs, "order": list(runs), "generator": "toy"},
              tmp_path / "tables")
    tmp_path = tmp_path / "tables"
    table = pd.read_csv(tmp_path / "cfg.csv", dtype=str, keep_default_na=False)
    for column in ("diversity [CI]", "FID [CI]", "class consistency % [CI]"):
        assert table[column].str.match(CI_CELL).all(), (column, list(table[column]))
    caption = (tmp_path / "cfg.md").read_text().splitlines()[0]
    assert "point estimate" not in caption and "Finding:" in caption
    assert "real reference" not in caption  # no such column in this table
    # the audit's models, as the synbench table names them; the toy's built-in trend said
    assert " Models: " in caption and f"(backend {backend})" in caption
    assert ("lower diversity at stronger guidance is built in" in caption) == (
        backend == "toy")
    assert "MixDiff Figs. 6-7" in caption and "Fig. 6, SynBench" not in caption


def test_a_summary_without_cis_is_rejected_with_a_rebuild_hint(audits, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(audits["syn_a"], stale)
    summary = _summary(stale)
    del summary["fid"]["ci_low"]
    (stale / SUMMARY_FILE).write_text(json.dumps(summary))
    with pytest.raises(DataError, match="older audit"):
        _synbench({"stale": stale}, tmp_path / "out")


def test_a_reference_rate_without_its_images_is_rejected(audits, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(audits["syn_a"], stale)
    (stale / REFERENCE_CONSISTENCY_FILE).unlink()
    with pytest.raises(DataError, match=REFERENCE_CONSISTENCY_FILE):
        _synbench({"stale": stale}, tmp_path / "out")


def test_plain_cells_write_the_ci_like_percent_cells():
    cell = Cell(0.4123, 0.40, 0.4251)
    assert cell.plain(3) == "0.412 [0.400, 0.425]"
    assert str(cell) == cell.plain(1, scale=100) == "41.2 [40.0, 42.5]"
    assert Cell(np.nan, np.nan, np.nan).plain(2) == "n/a"


@pytest.mark.parametrize("cell, written, verdict_zero_inside", [
    # the demo's negative control on retrieval mAP: a CI below 0 that rounds to 0.0
    (Cell(-0.00021, -0.00042, -0.00008), "-0.02 [-0.04, -0.01]", False),
    (Cell(0.016, 0.003, 0.029), "1.6 [0.3, 2.9]", False),
    (Cell(0.0, -0.004, 0.004), "0.0 [-0.4, 0.4]", True),   # covers 0: one decimal
    (Cell(0.00021, 0.00004, 0.0004), "0.021 [0.004, 0.040]", False),
])
def test_a_ci_that_excludes_0_is_written_with_bounds_on_its_side_of_0(
        cell, written, verdict_zero_inside):
    assert str(cell) == written
    lo, hi = (float(v) for v in written.split("[")[1].rstrip("]").split(", "))
    # what a reader checks the "differs" verdict against
    assert (lo <= 0 <= hi) == verdict_zero_inside
    assert cell.plain(1, 100, sign="+").startswith("-" if cell.estimate < 0 else "+")
