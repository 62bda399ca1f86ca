"""features.parquet round trip, metadata checks and atomic writes."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synreal.errors import DataError
from synreal.eval.features_io import read_features, write_features

META = {"checkpoint_key": "ck123", "protocol": "cls", "manifest_hash": "mh456"}


def _write(path, n=7, dim=5, seed=0, **meta):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim))  # float64 in, float32 stored
    ids = [f"img{i:03d}" for i in rng.permutation(n)]  # row order is not sorted order
    splits = ["trainval" if i % 3 else "test" for i in range(n)]
    labels = rng.integers(0, 4, n)
    write_features(path, emb, ids, splits, labels, [f"breed{v}" for v in labels],
                   [f"images/{i}.jpg" for i in ids], {**META, **meta})
    return emb, ids, splits, labels


def test_round_trip_schema_dtype_order_and_metadata(tmp_path):
    path = tmp_path / "features.parquet"
    emb, ids, splits, labels = _write(path, extra="kept")
    schema = pq.read_schema(path)
    assert schema.field("embedding").type == pa.list_(pa.float32(), 5)
    assert schema.field("label").type == pa.int32()
    for name in ("id", "split", "label_name", "path"):
        assert schema.field(name).type == pa.string()
    assert json.loads(schema.metadata[b"synreal"])["embedding_dim"] == 5

    features = read_features(path, expected={"protocol": "cls", "checkpoint_key": "ck123"})
    assert features.embeddings.dtype == np.float32 and features.embeddings.shape == (7, 5)
    np.testing.assert_array_equal(features.embeddings, emb.astype(np.float32))
    assert not features.embeddings.flags.owndata  # a view of the Arrow buffer
    assert list(features.column("id")) == ids
    np.testing.assert_array_equal(features.column("label"), labels)
    assert features.metadata == {**META, "extra": "kept", "embedding_dim": 5}

    test = features.select("test")
    assert list(test.column("id")) == [i for i, s in zip(ids, splits, strict=True) if s == "test"]
    is_test = np.array(splits) == "test"
    np.testing.assert_array_equal(test.embeddings, emb.astype(np.float32)[is_test])


def test_protocol_mismatch_names_the_file(tmp_path):
    path = tmp_path / "features.parquet"
    _write(path, protocol="dino_linear")
    with pytest.raises(DataError, match=r"features\.parquet has protocol='dino_linear' but 'cls'"):
        read_features(path, expected={"protocol": "cls"})


def test_foreign_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_features(tmp_path / "nope.parquet")
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1, 2]}), foreign)
    with pytest.raises(DataError, match="not a synreal features file"):
        read_features(foreign)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        read_features(garbage)


def test_missing_required_metadata_is_refused(tmp_path):
    with pytest.raises(ValueError, match="manifest_hash"):
        write_features(tmp_path / "f.parquet", np.zeros((1, 2)), ["a"], ["test"], [0], ["x"],
                       ["p"], {"checkpoint_key": "c", "protocol": "cls"})


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    import synreal.eval.features_io as features_io

    path = tmp_path / "features.parquet"
    emb, *_ = _write(path)
    with pytest.raises(ValueError, match="column 'label'"):
        write_features(path, np.zeros((3, 5)), ["a", "b", "c"], ["test"] * 3, [0, 1],
                       ["x"] * 3, ["p"] * 3, META)

    def crash(table, where, **kwargs):
        with open(where, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(features_io.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        _write(path, seed=1)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_features(path).embeddings, emb.astype(np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["features.parquet"]
