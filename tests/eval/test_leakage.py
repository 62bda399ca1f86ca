"""The leakage guard fails the run on shared ids or file hashes."""

import pytest

from synreal.errors import DataError
from synreal.eval.leakage import assert_no_test_leakage


def test_disjoint_sets_pass():
    assert_no_test_leakage(["a", "b"], ["c"], ["h1", "h2"], ["h3"])


def test_shared_id_names_it_and_counts():
    with pytest.raises(DataError, match=r"2 test image\(s\).*by id.*'b'"):
        assert_no_test_leakage(["a", "b", "c"], ["c", "b", "d"])


def test_shared_hash_under_another_id():
    with pytest.raises(DataError, match=r"1 test image\(s\).*file hash.*'h2'"):
        assert_no_test_leakage(["a", "b"], ["c"], ["h1", "h2"], ["h2"])


def test_missing_hashes_are_ignored():
    assert_no_test_leakage(["a"], ["b"], [None, ""], ["", None])
