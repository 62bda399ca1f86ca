"""Shards on disk: each one complete or absent, so a killed run resumes where it stopped.

Layout of an output folder::

    out_dir/plan.json                         what the shards were planned from
    out_dir/shards/00000/<class>/<id>.png     one ImageFolder-like tree per shard
    out_dir/shards/00000/shard.parquet        its rows; present only in complete shards
    out_dir/manifest.parquet                  every shard's rows, written when all are done

A shard is filled in a hidden temporary sibling (``shards/.00000.tmp-*``) and renamed into
place after its table is written; a kill leaves only the temporary, which the next run
deletes before making that shard again. Processes working on disjoint shard sets (one per
GPU) never touch each other's temporaries.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from PIL import Image

from synreal import faults
from synreal.errors import ConfigError, DataError

SHARDS_DIR = "shards"
SHARD_TABLE = "shard.parquet"
PLAN_FILE = "plan.json"

_SAVE_OPTIONS = {"png": ("PNG", {}), "jpg": ("JPEG", {"quality": 95}),
                 "webp": ("WEBP", {"lossless": True})}


def shard_dir(out_dir: Path, shard: int) -> Path:
    """Final folder of shard number ``shard``."""
    return Path(out_dir) / SHARDS_DIR / f"{shard:05d}"


def is_complete(out_dir: Path, shard: int) -> bool:
    """True when shard ``shard`` was finished (its table exists)."""
    return (shard_dir(out_dir, shard) / SHARD_TABLE).is_file()


def encode_image(image: Image.Image, image_format: str) -> bytes:
    """The file bytes of ``image`` in ``image_format`` (png, jpg or webp)."""
    kind, options = _SAVE_OPTIONS[image_format]
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=kind, **options)
    return buffer.getvalue()


class ShardWriter:
    """Files and rows of one shard being written into a temporary folder."""

    def __init__(self, out_dir: Path, shard: int, tmp: Path) -> None:
        self.out_dir, self.shard, self.tmp = Path(out_dir), shard, tmp
        self.rows: list[dict] = []

    def add(self, folder: str, name: str, data: bytes, row: dict) -> None:
        """Write ``data`` as ``<folder>/<name>`` in the shard and keep its manifest row."""
        target = self.tmp / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        faults.point("shard.image")
        relpath = (Path(SHARDS_DIR) / f"{self.shard:05d}" / folder / name).as_posix()
        self.rows.append({**row, "relpath": relpath, "shard": self.shard,
                          "sha256": hashlib.sha256(data).hexdigest()})


@contextlib.contextmanager
def open_shard(out_dir: Path, shard: int) -> Iterator[ShardWriter]:
    """Yield a :class:`ShardWriter`; on success its table is written and the folder renamed.

    Leftover temporaries of this shard (from a killed run) are removed first. If another
    process finished the same shard meanwhile, this copy is discarded.
    """
    parent = Path(out_dir) / SHARDS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{shard:05d}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard:05d}.tmp-", dir=parent))
    try:
        writer = ShardWriter(out_dir, shard, tmp)
        yield writer
        pd.DataFrame(writer.rows).to_parquet(tmp / SHARD_TABLE, index=False)
        faults.point("shard.commit")
        final = shard_dir(out_dir, shard)
        if final.exists() and not is_complete(out_dir, shard):
            shutil.rmtree(final)
        if is_complete(out_dir, shard):
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_shard(out_dir: Path, shard: int) -> pd.DataFrame:
    """Rows of a finished shard."""
    return pd.read_parquet(shard_dir(out_dir, shard) / SHARD_TABLE)


def check_plan(out_dir: Path, digest: str, n_images: int, n_shards: int) -> None:
    """Record the plan in ``plan.json``, or fail if the folder holds a different plan's shards."""
    from synreal.artifacts import write_json_atomic

    path = Path(out_dir) / PLAN_FILE
    wanted = {"digest": digest, "images": n_images, "shards": n_shards}
    if path.is_file():
        import json

        found = json.loads(path.read_text())
        if found.get("digest") != digest:
            raise ConfigError(f"{out_dir} holds shards of another generation plan (plan.json "
                              f"digest {found.get('digest')} != {digest}); use a new output "
                              "folder or delete this one.")
        return
    write_json_atomic(path, wanted)


def collect(out_dir: Path, n_shards: int, n_images: int) -> pd.DataFrame:
    """Concatenate every shard's rows; fail naming missing shards or a wrong image count."""
    missing = [k for k in range(n_shards) if not is_complete(out_dir, k)]
    if missing:
        raise DataError(f"{out_dir}: shards {missing[:10]} are not finished; run generate "
                        "again (it makes only the missing shards).")
    frame = pd.concat([read_shard(out_dir, k) for k in range(n_shards)], ignore_index=True)
    if len(frame) != n_images or frame["id"].duplicated().any():
        raise DataError(f"{out_dir}: shards hold {len(frame)} rows ({frame['id'].nunique()} "
                        f"unique ids) but the plan has {n_images} images; delete the folder "
                        "and generate again.")
    return frame
