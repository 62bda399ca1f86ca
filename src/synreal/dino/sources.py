"""Pretraining data sources: real, synthetic, a real/synthetic mix, or MixDiff pairs.

* ``real`` / ``synthetic``: the training split of one manifest.
* ``mix``: ``real_fraction`` of the images real, the rest synthetic, at the *same total* as
  the smaller source (Syn2Co Fig. 3: 0, 25, 50, 75, 100 % real at equal total images).
* ``mixdiff``: each sample is a real image and its image-variation counterpart (matched by
  the synthetic manifest's ``source_id``); crops are split between them (MixDiff Table 7).

Test images never reach pretraining: only training splits are read, and any row whose split
is a test split fails the run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synreal.errors import ConfigError, DataError

TRAINING_SPLITS = ("train", "trainval")
SOURCES = ("real", "synthetic", "mix", "mixdiff")


def training_rows(manifest: pd.DataFrame, where: str) -> pd.DataFrame:
    """Rows of the training splits; a manifest without any is a clear error."""
    rows = manifest[manifest["split"].isin(TRAINING_SPLITS)]
    if rows.empty:
        raise DataError(f"{where} has no rows in the training splits {list(TRAINING_SPLITS)}.")
    return rows.sort_values("id").reset_index(drop=True)


def build_samples(source: str, real: pd.DataFrame | None, synthetic: pd.DataFrame | None,
                  real_fraction: float = 1.0, seed: int = 0) -> list[tuple[str, ...]]:
    """Image paths per sample (1 path, or 2 for MixDiff pairs), in a deterministic order."""
    if source not in SOURCES:
        raise ConfigError(f"pretrain source {source!r} is not one of {list(SOURCES)}.")
    needs = {"real": ("real",), "synthetic": ("synthetic",), "mix": ("real", "synthetic"),
             "mixdiff": ("real", "synthetic")}[source]
    given = {"real": real, "synthetic": synthetic}
    for role in needs:
        if given[role] is None:
            raise ConfigError(f"pretrain source {source!r} needs a {role} dataset; name it "
                              f"under the run's '{role}' key.")
    real = training_rows(real, "the real manifest") if real is not None else None
    synthetic = training_rows(synthetic, "the synthetic manifest") if synthetic is not None \
        else None
    if source == "real":
        return [(p,) for p in real["path"]]
    if source == "synthetic":
        return [(p,) for p in synthetic["path"]]
    if source == "mix":
        return _mix(real, synthetic, real_fraction, seed)
    return _pairs(real, synthetic)


def _mix(real: pd.DataFrame, synthetic: pd.DataFrame, fraction: float,
         seed: int) -> list[tuple[str, ...]]:
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"pretrain real_fraction must lie in [0, 1], not {fraction}.")
    total = min(len(real), len(synthetic))
    n_real = int(round(fraction * total))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    real_paths = real["path"].to_numpy()[np.sort(rng.permutation(len(real))[:n_real])]
    syn_paths = synthetic["path"].to_numpy()[
        np.sort(rng.permutation(len(synthetic))[:total - n_real])]
    return [(p,) for p in [*real_paths, *syn_paths]]


def _pairs(real: pd.DataFrame, synthetic: pd.DataFrame) -> list[tuple[str, ...]]:
    if "source_id" not in synthetic.columns or synthetic["source_id"].isna().all():
        raise DataError("mixdiff needs image variations whose manifest has source_id (a "
                        "generator with backend sd-image-variations or toy-variations).")
    counterpart = synthetic.dropna(subset=["source_id"]).drop_duplicates("source_id")
    merged = real.merge(counterpart[["source_id", "path"]], left_on="id",
                        right_on="source_id", how="left", suffixes=("", "_syn"))
    missing = merged["path_syn"].isna()
    if missing.any():
        raise DataError(f"{int(missing.sum())} real training images have no variation "
                        f"(first: {merged.loc[missing, 'id'].iloc[0]!r}); regenerate the "
                        "variations for the same real dataset.")
    return list(zip(merged["path"], merged["path_syn"], strict=True))
