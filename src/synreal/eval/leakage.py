"""Leakage guard: no test image may reach a training step (probe, k-NN bank, RealTune).

Checked by image id and, when the manifests carry them, by file hash (sha256), which also
catches the same picture stored twice under two ids.
"""

from __future__ import annotations

from collections.abc import Iterable

from synreal.errors import DataError


def assert_no_test_leakage(
    train_ids: Iterable[str],
    test_ids: Iterable[str],
    train_hashes: Iterable[str | None] | None = None,
    test_hashes: Iterable[str | None] | None = None,
) -> None:
    """Raise :class:`~synreal.errors.DataError` if a test id or file hash is in the train set.

    Args:
        train_ids: ids of the images a model is trained or fitted on.
        test_ids: ids of the images it is evaluated on.
        train_hashes: optional file hashes of the training images (missing ones: None or "").
        test_hashes: optional file hashes of the test images.
    """
    _check("id", train_ids, test_ids)
    if train_hashes is not None and test_hashes is not None:
        _check("file hash", train_hashes, test_hashes)


def _check(what: str, train: Iterable[str | None], test: Iterable[str | None]) -> None:
    train_set = {str(v) for v in train if v is not None and v != ""}
    leaked = sorted({str(v) for v in test if v is not None and v != ""} & train_set)
    if leaked:
        raise DataError(
            f"{len(leaked)} test image(s) appear in the training data by {what} "
            f"(first: {leaked[0]!r}); fix the split in the dataset manifest so that test "
            "images never reach training."
        )
