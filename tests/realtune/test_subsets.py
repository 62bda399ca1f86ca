"""Tuning subsets: seeded, recorded by id, training splits only, counts as asked."""

import pandas as pd
import pytest

from synreal.errors import ConfigError, DataError
from synreal.realtune.subsets import class_counts, fraction_subset, per_class_subset


def _manifest(per_class=10, classes=("a", "b", "c"), test=3):
    rows = []
    for label, name in enumerate(classes):
        for i in range(per_class):
            rows.append({"id": f"{name}{i:03d}", "split": "trainval", "label": label,
                         "label_name": name, "path": f"/x/{name}{i}.png"})
        for i in range(test):
            rows.append({"id": f"{name}t{i:03d}", "split": "test", "label": label,
                         "label_name": name, "path": f"/x/{name}t{i}.png"})
    return pd.DataFrame(rows)


def test_fraction_subset_is_seeded_and_never_takes_test_images():
    manifest = _manifest()
    a = fraction_subset(manifest, 0.3, seed=1)
    assert len(a) == 9 and set(a["split"]) == {"trainval"}
    assert a.equals(fraction_subset(manifest, 0.3, seed=1))
    assert not a["id"].equals(fraction_subset(manifest, 0.3, seed=2)["id"])
    with pytest.raises(ConfigError, match="fraction"):
        fraction_subset(manifest, 0.0, seed=0)


def test_balanced_subset_has_k_per_class():
    subset = per_class_subset(_manifest(), 4, seed=0)
    assert subset.groupby("label_name").size().to_dict() == {"a": 4, "b": 4, "c": 4}
    assert not subset["id"].str.contains("t").any()


def test_unbalanced_ramp_keeps_the_total_like_the_paper():
    # the paper: mean 40 per class over 1000 classes, 21 .. 59 in steps of 2 per 50 classes
    counts = class_counts(20, 40, "unbalanced")
    assert counts.sum() == 800 and counts[0] == 21 and counts[-1] == 59
    assert (pd.Series(counts).diff().dropna() >= 0).all()
    subset = per_class_subset(_manifest(per_class=10), 4, seed=0, balance="unbalanced")
    sizes = subset.groupby("label_name").size()
    assert sizes.sum() == 12 and sizes["a"] < sizes["c"]


def test_too_few_images_name_the_class_and_the_fix():
    with pytest.raises(DataError, match="class 'a'.*lower realtune per_class"):
        per_class_subset(_manifest(per_class=2), 3, seed=0)


def test_per_class_zero_takes_every_training_image_and_no_test_image():
    """The labels a linear probe on the training split reads: fine-tuned and probed rows of
    a table then learn from the same images."""
    manifest = _manifest(per_class=5)
    subset = per_class_subset(manifest, 0, seed=0)
    training = manifest[manifest["split"] == "trainval"]
    assert sorted(subset["id"]) == sorted(training["id"])


def test_a_negative_per_class_is_refused_by_the_stage_params():
    from synreal.params import parse_params
    from synreal.stages.realtune import RealtuneParams

    with pytest.raises(ConfigError, match="per_class must be 0 .* or more, not -1"):
        parse_params(RealtuneParams, {"mode": "supervised", "per_class": -1}, "realtune")
