"""Seeded tuning subsets: only training splits, recorded by id, never a test image.

RealTune tunes on a small share of real data (SynBench Table 10: 100 images per class of
ImageNet-100, 7.7 %); its appendix also tunes on an *unbalanced* split with the same total,
whose per-class counts rise linearly from class to class (21, 23, ..., 59 around a mean of 40).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synreal.dino.sources import training_rows
from synreal.errors import ConfigError, DataError

BALANCES = ("balanced", "unbalanced")


def fraction_subset(manifest: pd.DataFrame, fraction: float, seed: int,
                    where: str = "the tuning data") -> pd.DataFrame:
    """An unlabeled random share of the training rows (at least one image), sorted by id."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"realtune fraction must lie in (0, 1], not {fraction}.")
    rows = training_rows(manifest, where)
    n = max(1, int(round(fraction * len(rows))))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    return rows.iloc[np.sort(rng.permutation(len(rows))[:n])].reset_index(drop=True)


def class_counts(n_classes: int, per_class: int, balance: str) -> np.ndarray:
    """Images per class: ``per_class`` each, or a linear ramp with the same total."""
    if balance not in BALANCES:
        raise ConfigError(f"realtune balance {balance!r} is not one of {list(BALANCES)}.")
    if per_class < 1:
        raise ConfigError(f"realtune per_class must be at least 1, not {per_class}.")
    if balance == "balanced" or n_classes == 1:
        return np.full(n_classes, per_class)
    # the paper's ramp: 21..59 around 40, i.e. +-47.5 % of the mean, then fix the rounding
    ramp = np.linspace(0.525 * per_class, 1.475 * per_class, n_classes)
    counts = np.maximum(1, np.round(ramp)).astype(int)
    counts[-1] += per_class * n_classes - counts.sum()
    return np.maximum(counts, 1)


def per_class_subset(manifest: pd.DataFrame, per_class: int, seed: int,
                     balance: str = "balanced",
                     where: str = "the tuning data") -> pd.DataFrame:
    """``per_class`` labeled training images of every class (or the unbalanced ramp).

    ``per_class`` 0 takes every training image: the labelled set a linear probe on the same
    split reads, so fine-tuned and probed rows of a table spend the same labels.
    """
    rows = training_rows(manifest, where)
    if per_class == 0:
        return rows.sort_index().reset_index(drop=True)
    labels = sorted(rows["label_name"].unique())
    counts = class_counts(len(labels), per_class, balance)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 13]))
    picked = []
    for label, count in zip(labels, counts, strict=True):
        members = rows.index[rows["label_name"] == label].to_numpy()
        if len(members) < count:
            raise DataError(f"{where}: class {label!r} has {len(members)} training images, "
                            f"fewer than the {count} asked; lower realtune per_class.")
        picked.append(members[np.sort(rng.permutation(len(members))[:count])])
    return rows.loc[np.sort(np.concatenate(picked))].reset_index(drop=True)
