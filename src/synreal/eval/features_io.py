"""``features.parquet``: one row per image with its frozen embedding, and what made it.

Schema (row order = the order the embeddings were given in)::

    id: string, split: string, label: int32, label_name: string, path: string,
    embedding: fixed_size_list<float32>[d]

The schema metadata key ``synreal`` holds JSON with at least ``checkpoint_key``, ``protocol``
(e.g. ``cls``, ``dino_linear``), ``manifest_hash`` (the evaluation dataset's manifest) and
``embedding_dim``; ``views`` names column ranges of the embedding that evaluations read
(``{"cls": {"start", "stop", "description"}, ...}``; a file without it offers its whole
embedding under its protocol's name). Readers pass the values they expect, so a features
file made with another protocol, checkpoint or dataset fails loudly instead of producing
plausible wrong numbers.

The embedding column is written uncompressed, without dictionary encoding, in one row group.
Reading maps the file (``pyarrow.memory_map``, no read copy), Parquet decodes the column once
into an Arrow buffer, and numpy views the fixed-size list's flat float32 values buffer as an
``(n, d)`` matrix: no Python loop over rows and no further copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synreal.errors import DataError

METADATA_KEY = b"synreal"
REQUIRED_METADATA = ("checkpoint_key", "protocol", "manifest_hash")
COLUMNS = ("id", "split", "label", "label_name", "path")


@dataclass(frozen=True)
class Features:
    """A features file in memory.

    Attributes:
        embeddings: ``(n, d)`` float32, a read-only view of the Arrow values buffer.
        table: the other columns (id, split, label, label_name, path), same row order.
        metadata: the file-level metadata (checkpoint key, protocol, manifest hash, dim, ...).
    """

    embeddings: np.ndarray
    table: pa.Table
    metadata: dict[str, Any]

    def column(self, name: str) -> np.ndarray:
        """One of the non-embedding columns as a numpy array."""
        return self.table.column(name).to_numpy()

    def views(self) -> dict[str, dict]:
        """Named column ranges of the embedding, each with a one-line description."""
        dim = int(self.metadata["embedding_dim"])
        return self.metadata.get("views") or {
            self.metadata["protocol"]: {"start": 0, "stop": dim,
                                        "description": f"{self.metadata['protocol']} ({dim}-d)"}}

    def view(self, name: str, where: str = "features") -> Features:
        """The same rows with only the columns of view ``name`` (``cls``, ``dino_linear``).

        ``where``: the setting that asked for the view, named in the error when the file
        does not offer it.
        """
        views = self.views()
        if name not in views:
            raise DataError(
                f"{where} is {name!r} but this features file offers only {sorted(views)} "
                f"(protocol {self.metadata['protocol']!r}); set {where} to one of them or "
                "extract with evaluation.features.protocol: dino_linear.")
        part = views[name]
        return Features(np.ascontiguousarray(self.embeddings[:, part["start"]:part["stop"]]),
                        self.table, {**self.metadata, "view": name,
                                     "view_description": part["description"]})

    def select(self, split: str) -> Features:
        """The rows of one split (``trainval``, ``test``, ...), embeddings copied."""
        mask = self.column("split") == split
        return Features(self.embeddings[mask], self.table.filter(pa.array(mask)), self.metadata)


def write_features(
    path: Path,
    embeddings: np.ndarray,
    ids: Sequence[str],
    splits: Sequence[str],
    labels: Sequence[int],
    label_names: Sequence[str],
    paths: Sequence[str],
    metadata: Mapping[str, Any],
) -> Path:
    """Write ``features.parquet`` atomically (temp file in the same folder, then rename).

    Args:
        path: output file.
        embeddings: ``(n, d)`` float-convertible matrix, stored as float32.
        ids, splits, labels, label_names, paths: ``n`` values each, one per image.
        metadata: must hold ``checkpoint_key``, ``protocol`` and ``manifest_hash``; any other
            JSON-serialisable keys are kept. ``embedding_dim`` is added.
    """
    path = Path(path)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got shape {emb.shape}")
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise ValueError(f"features metadata lacks {missing}; required: {list(REQUIRED_METADATA)}")
    n, dim = emb.shape
    meta = {**metadata, "embedding_dim": dim}
    flat = pa.array(emb.reshape(-1), type=pa.float32())
    columns = {
        "id": pa.array([str(v) for v in ids], pa.string()),
        "split": pa.array([str(v) for v in splits], pa.string()),
        "label": pa.array(np.asarray(labels, dtype=np.int32), pa.int32()),
        "label_name": pa.array([str(v) for v in label_names], pa.string()),
        "path": pa.array([str(v) for v in paths], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    }
    for name, column in columns.items():
        if len(column) != n:
            raise ValueError(f"column {name!r} has {len(column)} values for {n} embeddings")
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(
            table,
            tmp,
            compression={c: "zstd" for c in COLUMNS} | {"embedding": "none"},
            use_dictionary=list(COLUMNS),
            row_group_size=max(1, n),
        )
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_features(path: Path, expected: Mapping[str, Any] | None = None) -> Features:
    """Read a features file; fail naming the file when it is not what the caller expects.

    Args:
        path: a file written by :func:`write_features`.
        expected: metadata values that must match, e.g. ``{"protocol": "cls",
            "checkpoint_key": key}``.

    Raises:
        DataError: missing file, foreign schema, or metadata that differs from ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"features file {path} does not exist; run the features stage first.")
    try:
        table = pq.read_table(pa.memory_map(str(path), "r"))
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(f"{path} is not a readable Parquet file ({err}); "
                        "delete it and rerun the features stage.") from err
    metadata = _metadata(path, table.schema)
    for key, value in (expected or {}).items():
        if metadata.get(key) != value:
            raise DataError(
                f"{path} has {key}={metadata.get(key)!r} but {value!r} is expected; "
                f"rerun the features stage with {key}={value!r} or point to the matching file."
            )
    embeddings = _embedding_matrix(path, table, int(metadata["embedding_dim"]))
    return Features(embeddings, table.select(list(COLUMNS)), metadata)


def _metadata(path: Path, schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(METADATA_KEY)
    missing_cols = [c for c in (*COLUMNS, "embedding") if c not in schema.names]
    if raw is None or missing_cols:
        raise DataError(f"{path} is not a synreal features file (missing metadata or columns "
                        f"{missing_cols}); rerun the features stage.")
    metadata = json.loads(raw)
    lacking = [k for k in (*REQUIRED_METADATA, "embedding_dim") if k not in metadata]
    if lacking:
        raise DataError(f"{path} metadata lacks {lacking}; rerun the features stage.")
    return metadata


def _embedding_matrix(path: Path, table: pa.Table, dim: int) -> np.ndarray:
    column = table.column("embedding")
    kind = column.type
    if not (pa.types.is_fixed_size_list(kind) and kind.list_size == dim
            and kind.value_type == pa.float32()):
        raise DataError(f"{path} column 'embedding' is {kind}, expected "
                        f"fixed_size_list<float32>[{dim}]; rerun the features stage.")
    if column.null_count:
        raise DataError(f"{path} has {column.null_count} rows without an embedding; "
                        "rerun the features stage.")
    chunks = column.chunks
    if not chunks:
        return np.empty((0, dim), dtype=np.float32)
    array = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    values = array.flatten().to_numpy(zero_copy_only=True)  # (n * d,) float32 view
    return values.reshape(len(array), dim)
