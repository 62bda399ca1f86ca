"""Shared plumbing of the evaluation stages: load features by split, save metrics with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from synreal.artifacts import write_json_atomic
from synreal.errors import DataError

METRICS_FILE = "metrics.json"
PER_ITEM_FILE = "per_item.parquet"


def _artifact_expectations(features_path: Path) -> dict:
    """Protocol and checkpoint the features artifact's own ``spec.json`` says the file holds.

    A features file copied in from another run (another protocol or checkpoint) then fails
    loudly instead of giving plausible wrong numbers.
    """
    spec_path = Path(features_path).parent / "spec.json"
    if not spec_path.is_file():
        return {}
    spec = json.loads(spec_path.read_text())
    expected = {}
    if "protocol" in spec.get("params", {}):
        expected["protocol"] = spec["params"]["protocol"]
    if "checkpoint" in spec.get("upstream", {}):
        expected["checkpoint_key"] = spec["upstream"]["checkpoint"]
    return expected


def load_split(features_path: Path, split: str, view: str | None = None,
               where: str = "features"):
    """Rows of one split of a features file, restricted to feature ``view`` when given.

    An empty split, a foreign file, or a view the file does not offer (``where`` names the
    setting that asked for it) is a clear error.
    """
    from synreal.eval.features_io import read_features

    expected = _artifact_expectations(Path(features_path))
    features = read_features(Path(features_path), expected)
    if view is not None:
        features = features.view(view, where)
    part = features.select(split)
    if part.embeddings.shape[0] == 0:
        splits = sorted(set(features.column("split")))
        raise DataError(f"{features_path} has no rows in split {split!r} (splits: {splits}); "
                        "check the evaluation's train/test split names.")
    return part


def features_line(features) -> str:
    """``"<model> <view description>"`` of features loaded by :func:`load_split`."""
    description = features.metadata.get("view_description", features.metadata["protocol"])
    return f"{features.metadata.get('model', 'backbone')} {description}"


def save_metrics(out_dir: Path, metrics: dict, per_item: dict[str, np.ndarray],
                 ids: np.ndarray) -> None:
    """Write ``metrics.json`` and the per-item values the paired bootstrap needs."""
    write_json_atomic(Path(out_dir) / METRICS_FILE, metrics)
    frame = pd.DataFrame({"id": ids, **{k: np.asarray(v) for k, v in per_item.items()}})
    frame.to_parquet(Path(out_dir) / PER_ITEM_FILE, index=False)


def with_ci(per_item: dict[str, np.ndarray], resamples: int, seed: int) -> dict[str, dict]:
    """``{metric: {estimate, lo, hi}}`` from per-item values (95 % percentile bootstrap).

    The metrics share one seeded draw of resample indices (:func:`bootstrap_cis`), so each
    interval is the one :func:`~synreal.eval.bootstrap.bootstrap_ci` gives with ``seed``.
    """
    from synreal.eval.bootstrap import bootstrap_cis

    return {name: interval.as_dict()
            for name, interval in bootstrap_cis(per_item, resamples, seed=seed).items()}
