"""Ingest: decode every image of a dataset once and write ``manifest.parquet``.

The manifest is the contract between a dataset on disk and every later stage:
one row per usable image with ``id, path, relpath, label, label_name, split, sha256,
width, height, mode, constant``. Corrupt, truncated and zero-byte files are reported
(path and reason) and either fail the stage or are skipped, as configured (``on_corrupt``);
images in unusual modes (CMYK, 16-bit, palette, RGBA, grayscale) are kept and converted to
RGB by :func:`load_rgb`, exactly as ingest decoded them, so no later stage (nor a DataLoader
worker) meets a file ingest did not read; constant images (all black, all white) are kept
and flagged ``constant``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from synreal.data.formats import Record
from synreal.errors import DataError

MANIFEST_COLUMNS = ("id", "path", "relpath", "label", "label_name", "split", "sha256",
                    "width", "height", "mode", "constant")
MANIFEST_FILE = "manifest.parquet"
#: Schema metadata flag: image paths are relative to the manifest's folder (``relpath``).
RELATIVE_PATHS_KEY = "synreal.relative_paths"


@dataclass(frozen=True)
class Decoded:
    """Outcome of decoding one file: a manifest row, or the reason it is unusable."""

    record: Record
    row: dict | None
    problem: str | None


#: What a file that is not a usable image raises while PIL opens and decodes it.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                  Image.DecompressionBombError)


class UndecodableImage(DataError):
    """An image file that no longer decodes; ``reason`` is the short, reproducible cause."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}; it changed since ingest: restore the file or "
                         "rerun ingest (snakemake reruns it when the folder changes).")
        self.reason = reason


def _reason(error: Exception) -> str:
    """A short, reproducible reason (no object addresses) for a decode failure."""
    if isinstance(error, UnidentifiedImageError):
        return "cannot decode: not an image in a format PIL reads"
    return f"cannot decode: {error}"


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB view of any PIL mode; 16/32-bit integer images are scaled to their maximum."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray((array / max(array.max(), 1) * 255).astype(np.uint8))
    return image.convert("RGB")


def _decode(root: Path, record: Record) -> Decoded:
    path = root / record.relpath
    try:
        data = path.read_bytes()
    except OSError as error:
        return Decoded(record, None, f"unreadable: {error.strerror or error}")
    if not data:
        return Decoded(record, None, "zero-byte file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mode, (width, height) = image.mode, image.size
            extrema = _to_rgb(image).getextrema()
    except _DECODE_ERRORS as error:
        return Decoded(record, None, _reason(error))
    constant = all(lo == hi for lo, hi in extrema)
    row = {
        "id": str(Path(record.relpath).with_suffix("")),
        "path": str(path.resolve()),
        "relpath": record.relpath,
        "label": record.label,
        "label_name": record.label_name,
        "split": record.split,
        "sha256": hashlib.sha256(data).hexdigest(),
        "width": width,
        "height": height,
        "mode": mode,
        "constant": constant,
    }
    return Decoded(record, row, None)


def decode_all(root: Path, records: Iterable[Record], workers: int = 4) -> list[Decoded]:
    """Decode every record (threads: PIL releases the GIL while decoding), in input order."""
    records = list(records)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda r: _decode(Path(root), r), records)
        return list(tqdm(results, total=len(records), desc="ingest", unit="img", mininterval=2))


def build_manifest(root: Path, records: list[Record], on_corrupt: str = "fail",
                   workers: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (manifest, problems) for a scanned dataset.

    Args:
        on_corrupt: ``fail`` raises naming the first bad file; ``skip`` drops bad files and
            lists them in ``problems`` (columns ``relpath, reason``).
    """
    if on_corrupt not in ("fail", "skip"):
        raise ValueError(f"on_corrupt must be 'fail' or 'skip', not {on_corrupt!r}")
    decoded = decode_all(root, records, workers)
    problems = pd.DataFrame(
        [{"relpath": d.record.relpath, "reason": d.problem} for d in decoded if d.problem],
        columns=["relpath", "reason"],
    )
    if len(problems) and on_corrupt == "fail":
        first = problems.iloc[0]
        raise DataError(
            f"{Path(root) / first.relpath}: {first.reason} ({len(problems)} bad file(s) in "
            f"{root}); fix or remove it, or set the dataset's on_corrupt: skip."
        )
    rows = [d.row for d in decoded if d.row is not None]
    if not rows:
        raise DataError(f"no readable image in {root}; check the dataset folder.")
    manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    duplicated = manifest["id"].duplicated()
    if duplicated.any():
        raise DataError(f"{root}: image id {manifest['id'][duplicated].iloc[0]!r} appears twice; "
                        "each image needs a unique path without its extension.")
    return manifest, problems


def manifest_hash(manifest: pd.DataFrame) -> str:
    """Content hash of a manifest: ids, splits, labels and file hashes, order-independent."""
    cols = manifest.sort_values("id")[["id", "split", "label", "sha256"]].astype(str)
    digest = hashlib.sha256("\n".join("\t".join(r) for r in cols.itertuples(index=False, name=None))
                            .encode())
    return digest.hexdigest()


def write_manifest(manifest: pd.DataFrame, path: Path, metadata: dict | None = None) -> None:
    """Write a manifest to Parquet with the dataset metadata in the schema."""
    table = pa.Table.from_pandas(manifest, preserve_index=False)
    meta = {k.encode(): str(v).encode() for k, v in (metadata or {}).items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
    pq.write_table(table, path)


def read_manifest(path: Path, splits: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a manifest, optionally keeping only ``splits``; errors name the file.

    Manifests of generated datasets store image paths relative to their own folder (the
    artifact is renamed into place when complete); ``path`` is resolved here.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} does not exist; run the stage that makes it first.")
    table = pq.read_table(path)
    frame = table.to_pandas()
    if (table.schema.metadata or {}).get(RELATIVE_PATHS_KEY.encode()) == b"true":
        root = path.resolve().parent
        frame["path"] = [str(root / rel) for rel in frame["relpath"]]
    missing = [c for c in ("id", "path", "label", "split") if c not in frame.columns]
    if missing:
        raise DataError(f"{path} is not a synreal manifest (missing columns {missing}).")
    if splits is not None:
        frame = frame[frame["split"].isin(list(splits))].reset_index(drop=True)
    return frame


def load_rgb(path: str | Path, size: int | None = None) -> np.ndarray:
    """Decode one image as RGB uint8 ``(H, W, 3)``; 16-bit, CMYK, palette and alpha converted.

    A file that no longer decodes (changed or damaged since ingest) raises a DataError
    naming it, not a PIL error from deep inside a DataLoader worker.
    """
    try:
        with Image.open(path) as image:
            rgb = _to_rgb(image)
    except _DECODE_ERRORS as error:
        raise UndecodableImage(path, _reason(error)) from None
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BICUBIC)
    return np.asarray(rgb)
