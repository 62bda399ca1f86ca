"""The synbench table's VLM person-blocking column: the judge-confirmed rate with the same
bootstrap CI as the overlap rule's column, or "not measured" when no judge was configured.

The audits run end to end on the toy world with a scripted judge in place of BLIP, so the
column is read from what :func:`audit_dataset` really writes.
"""

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from synreal.audit import AUDIT_FILE, SUMMARY_FILE, AuditParams, audit_dataset, vlm
from synreal.errors import DataError
from synreal.report.builders import AUDIT_CELL_RESAMPLES, synbench_table
from synreal.report.metrics import rate_cell
from tests.audit.conftest import WIDE, pixel_features, toy_manifest

VLM_COLUMN = "VLM person blocking % [CI]"
CI_CELL = re.compile(r"^-?\d+\.\d+ \[-?\d+\.\d+, -?\d+\.\d+\]$")
PARAMS = AuditParams(person_backend="boxes-from-column", kid_subsets=5, kid_subset_size=30,
                     fid_resamples=40)


class ScriptedJudge:
    """Answers yes, no and an unparseable word in turn."""

    answers = ("yes", "no", "it depends")

    def answer(self, images, questions, progress=True):
        return [self.answers[i % 3] for i in range(len(questions))]


@pytest.fixture(scope="module")
def audits(tmp_path_factory):
    """The same toy real set audited without a judge and with the scripted one."""
    root = tmp_path_factory.mktemp("audits")
    real = toy_manifest(root / "real", 8, WIDE, seed=1)
    out = {"no_judge": root / "no_judge", "judged": root / "judged"}
    audit_dataset(PARAMS, real, out["no_judge"], embed=pixel_features, name="real")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(vlm._FACTORIES, "blip-vqa", lambda params: ScriptedJudge())
        judged = replace(PARAMS, person_vlm="blip-vqa", person_vlm_model_id="scripted/judge",
                         person_vlm_weights="scripted")
        audit_dataset(judged, real, out["judged"], embed=pixel_features, name="real")
    return out


def _synbench(audits, out_dir):
    synbench_table({"study": "toy", "audits": {k: str(v) for k, v in audits.items()}},
                   out_dir)
    table = pd.read_csv(out_dir / "synbench.csv", dtype=str, keep_default_na=False)
    return table.set_index("dataset"), (out_dir / "synbench.md").read_text()


def test_the_vlm_cell_is_the_judged_rate_with_the_overlap_cells_ci(audits, tmp_path):
    table, _ = _synbench(audits, tmp_path)
    frame = pd.read_parquet(audits["judged"] / AUDIT_FILE)
    verdicts = frame["person_vlm_blocked"].to_numpy(float)
    assert (verdicts == 1).any() and (verdicts == 0).any() and np.isnan(verdicts).any()
    expected = rate_cell(verdicts, AUDIT_CELL_RESAMPLES, 0)
    cell = table.loc["judged", VLM_COLUMN]
    assert cell == str(expected) and CI_CELL.match(cell)
    rate = json.loads((audits["judged"] / SUMMARY_FILE).read_text())[
        "person_blocking"]["vlm"]["rate"]
    assert expected.estimate == pytest.approx(rate) and expected.lo < expected.hi
    # the overlap rule's column is unchanged beside it
    assert table.loc["judged", "person blocking % [CI]"] == table.loc[
        "no_judge", "person blocking % [CI]"]


def test_without_a_judge_the_vlm_cell_is_not_measured(audits, tmp_path):
    table, markdown = _synbench(audits, tmp_path)
    assert table.loc["no_judge", VLM_COLUMN] == "not measured"
    columns = list(table.columns)
    assert columns.index(VLM_COLUMN) == columns.index("person blocking % [CI]") + 1
    assert "scripted/judge" in markdown.splitlines()[0]


def test_a_vlm_rate_without_its_verdicts_is_rejected(audits, tmp_path):
    stale = tmp_path / "stale"
    shutil.copytree(audits["judged"], stale)
    frame = pd.read_parquet(stale / AUDIT_FILE).drop(columns="person_vlm_blocked")
    frame.to_parquet(stale / AUDIT_FILE)
    with pytest.raises(DataError, match="person_vlm_blocked"):
        _synbench({"stale": stale}, tmp_path / "out")
