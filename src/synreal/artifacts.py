"""Atomic artifact directories: ``results/<stage>/<key>/`` appears complete or not at all.

A stage writes into a temporary sibling directory; on success ``spec.json`` is written last
and the directory is renamed into place with one ``rename(2)``. A crash or kill leaves only
a ``.<key>.tmp-*`` directory that never looks finished and is cleaned on the next run.

Long stages (generation, pretraining) are *resumable*: they work in ``.<key>.partial``, which
survives a crash or pre-emption, so the rerun continues from its shards or checkpoints and
renames the directory into place only when it is complete.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from synreal import faults
from synreal.errors import DataError, StorageError
from synreal.provenance import provenance

SPEC_FILE = "spec.json"

#: ``OSError`` numbers that mean "the results storage cannot take this write". Permission
#: errors count only while creating the work directory: inside a stage they may concern an
#: input file, whose own message is more useful.
FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
NOT_WRITABLE = FULL_OR_READ_ONLY | {errno.EACCES, errno.EPERM}


def is_complete(artifact_dir: Path) -> bool:
    """True when ``artifact_dir`` was finished by :func:`atomic_artifact`."""
    return (Path(artifact_dir) / SPEC_FILE).is_file()


def read_spec(artifact_dir: Path) -> dict:
    """Load the ``spec.json`` of a finished artifact, or fail naming the directory."""
    path = Path(artifact_dir) / SPEC_FILE
    if not path.is_file():
        raise DataError(
            f"{artifact_dir} is not a finished artifact (no {SPEC_FILE}); "
            "rerun the stage that makes it (snakemake --rerun-incomplete)."
        )
    return json.loads(path.read_text())


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temp file and rename, so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def storage_error(error: OSError, final_dir: Path,
                  kinds: frozenset[int] = FULL_OR_READ_ONLY) -> StorageError | None:
    """One-sentence :class:`StorageError` for a storage ``OSError`` while writing ``final_dir``.

    Returns None for any other error (a bug or bad input, which keeps its own message).
    """
    if error.errno not in kinds:
        return None
    where = error.filename or final_dir
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "the disk is full" if error.errno == errno.ENOSPC else "the disk quota is used up"
        fix = "free space there"
    else:
        what = ("the file system is read-only" if error.errno == errno.EROFS
                else "permission denied")
        fix = f"make {Path(final_dir).parent} writable"
    return StorageError(f"cannot write {where} ({what}); {fix} and rerun: nothing half-written "
                        "is kept and finished artifacts are untouched.")


def _remove_stale_temporaries(final: Path) -> None:
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _clear_unfinished(final: Path) -> None:
    """Remove a directory at the final path that is not a finished artifact.

    Snakemake creates the parent of declared outputs before a job starts, so an empty
    (or half-filled, from an older non-atomic writer) directory may sit there.
    """
    if final.exists() and not is_complete(final):
        shutil.rmtree(final)


def partial_dir(final_dir: Path) -> Path:
    """The persistent work directory of a resumable stage writing ``final_dir``."""
    final = Path(final_dir)
    return final.with_name(f".{final.name}.partial")


@contextlib.contextmanager
def atomic_artifact(final_dir: Path, spec: dict, resumable: bool = False) -> Iterator[Path]:
    """Yield a work directory to fill; on success write spec.json and rename it to ``final_dir``.

    Args:
        final_dir: where the finished artifact must appear, e.g. ``results/ingest/<key>``.
        spec: the resolved spec (stage, key, params, upstream); provenance is added.
        resumable: work in :func:`partial_dir`, kept on failure so a rerun resumes from it.

    On any exception a non-resumable work directory is deleted; an existing finished
    artifact at ``final_dir`` is always left untouched.
    """
    final = Path(final_dir)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(final)
        if resumable:
            tmp = partial_dir(final)
            tmp.mkdir(exist_ok=True)
            (tmp / SPEC_FILE).unlink(missing_ok=True)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as error:
        raise storage_error(error, final, NOT_WRITABLE) or error from None
    try:
        yield tmp
        write_json_atomic(tmp / SPEC_FILE, {**spec, "provenance": provenance()})
        faults.point("artifact.commit")
        _clear_unfinished(final)
        if final.exists():
            old = final.with_name(f".{final.name}.tmp-old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException as error:
        if not resumable:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(error, OSError) and (translated := storage_error(error, final)):
            raise translated from None
        raise
