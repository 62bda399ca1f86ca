"""Planted leaks: k exact and k near copies (downscaled, re-encoded as JPEG) of test images in a
synthetic set are found, and no other image is; a test split audited against itself has none.

The audit runs as the stage runs it (:func:`audit_dataset`, the duplicate threshold calibrated
on the real reference, leaks by file hash and by embedding) with the production DINOv2
embedder class (transformers ``Dinov2Model`` from a local folder). Honest limits: its weights
are a tiny random DINOv2 at 56 px (the real facebook/dinov2-base cannot be downloaded here), so
this checks the leak machinery, not DINOv2's semantics. A random network squeezes every toy
image into a narrow cone (cosines 0.997-1.0 here); near copies still sit above the calibrated
threshold and distinct images below it, on this fixed seed.
"""

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from synreal.audit import AUDIT_FILE, AuditParams, audit_dataset, tiny
from synreal.audit.embedders import create_embedder
from tests.audit.conftest import NARROW, WIDE, toy_manifest

K = 3
PARAMS = AuditParams(consistency_backend="none", kid_subsets=2, kid_subset_size=10,
                     fid_resamples=5, diversity_resamples=5)


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _near_copy(row: pd.Series, out: Path) -> str:
    """The image downscaled to 3/4 (bicubic) and re-encoded as JPEG at quality 80."""
    image = Image.open(row["path"]).convert("RGB")
    image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.BICUBIC).save(out,
                                                                                    quality=80)
    return str(out)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaks")
    real = toy_manifest(root / "real", 6, WIDE, seed=1)
    real.loc[real.index[::3], "split"] = "test"
    real["sha256"] = [_sha(p) for p in real["path"]]
    test = real[real["split"] == "test"].reset_index(drop=True)
    planted = [test.iloc[i].to_dict() | {"id": f"exact{i}", "split": "train"}
               for i in range(K)]
    planted += [test.iloc[i].to_dict() | {"id": f"near{i}", "split": "train",
                                          "path": _near_copy(test.iloc[i], root / f"n{i}.jpg")}
                for i in range(K, 2 * K)]
    synthetic = pd.concat([toy_manifest(root / "syn", 4, NARROW, seed=2),
                           pd.DataFrame(planted)], ignore_index=True)
    synthetic["sha256"] = [_sha(p) for p in synthetic["path"]]
    embed = create_embedder("dinov2", None, str(tiny.build_dinov2(root / "dinov2", side=56)))
    return {"real": real, "test": test, "synthetic": synthetic, "embed": embed, "root": root}


def test_exactly_the_planted_copies_are_leaks(world):
    out = world["root"] / "synthetic_audit"
    summary = audit_dataset(PARAMS, world["synthetic"], out, reference_manifest=world["real"],
                            test_manifest=world["test"], embed=world["embed"], name="syn")
    table = pd.read_parquet(out / AUDIT_FILE)
    leaks = dict(zip(world["synthetic"]["id"][table["test_leak"].notna()],
                     table["test_leak"].dropna(), strict=True))
    assert leaks == {**{f"exact{i}": "exact" for i in range(K)},
                     **{f"near{i}": "near" for i in range(K, 2 * K)}}
    dups = summary["near_duplicates"]
    assert dups["leaks"] == 2 * K and dups["exact_test"] == K and dups["test_matches"] == K
    assert "halves of real" in dups["source"]  # the calibrated threshold, not a constant
    assert summary["leakage_warning"].startswith(f"{2 * K} image(s)")


def test_the_test_split_audited_against_itself_has_no_leaks(world):
    out = world["root"] / "test_audit"
    summary = audit_dataset(PARAMS, world["test"], out, test_manifest=world["test"],
                            embed=world["embed"], name="pets test")
    dups = summary["near_duplicates"]
    assert dups["leaks"] == 0 and summary["leakage_warning"] is None
    assert dups["leak_skipped_test_rows"] == len(world["test"]) and dups["leak_checked"] == 0


def test_a_real_set_with_its_test_split_checks_only_its_other_rows(world):
    out = world["root"] / "real_audit"
    summary = audit_dataset(PARAMS, world["real"], out, test_manifest=world["test"],
                            embed=world["embed"], name="pets")
    dups = summary["near_duplicates"]
    assert dups["leak_skipped_test_rows"] == len(world["test"])
    assert dups["leak_checked"] == len(world["real"]) - len(world["test"])
    assert dups["exact_test"] == 0  # a test image is not its own leak
