"""Stage ``probe``: linear classifier on frozen features (train split only), top-1/top-5 on test."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class ProbeParams:
    """Parameters of the ``probe`` stage (linear probe on frozen features)."""

    train_split: str = doc("Split the probe is trained on (Pet: trainval).", default="trainval")
    test_split: str = doc("Split it is evaluated on (Pet: test); never seen in training.",
                          default="test")
    lrs: tuple = doc("Learning rates tried on a held-out part of the train split.",
                     default=(1e-3, 1e-2, 1e-1))
    weight_decays: tuple = doc("Weight decays tried with each learning rate.",
                               default=(0.0, 1e-4, 1e-3, 1e-2))
    steps: int = doc("Full-batch optimisation steps per fit.", default=300)
    val_fraction: float = doc("Stratified share of the train split held out for selection.",
                              default=0.2)
    seed: int = doc("Seed of the held-out split and the probe's initialisation.", default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)


def run(spec: dict, out_dir: Path) -> None:
    """Fit the probe, write metrics with CIs, per-image correctness and the confusion plot."""
    import numpy as np

    from synreal.data.manifest import read_manifest
    from synreal.eval.leakage import assert_no_test_leakage
    from synreal.eval.plots import plot_confusion_matrix
    from synreal.eval.probe import ProbeConfig, linear_probe
    from synreal.stages._evaluation import load_split, save_metrics, with_ci

    params = parse_params(ProbeParams, spec["params"], "probe params")
    train = load_split(spec["inputs"]["features"], params.train_split)
    test = load_split(spec["inputs"]["features"], params.test_split)
    manifest = read_manifest(spec["inputs"]["manifest"]).set_index("id")
    train_ids, test_ids = train.column("id"), test.column("id")
    assert_no_test_leakage(train_ids, test_ids, manifest.loc[train_ids, "sha256"],
                           manifest.loc[test_ids, "sha256"])
    config = ProbeConfig(lrs=tuple(params.lrs), weight_decays=tuple(params.weight_decays),
                         steps=params.steps, val_fraction=params.val_fraction, seed=params.seed)
    result = linear_probe(train.embeddings, train.column("label"), test.embeddings,
                          test.column("label"), config, train_ids, test_ids)
    per_item = {"top1": result.correct.astype(np.float64)}
    names = dict(zip(test.column("label"), test.column("label_name"), strict=True))
    metrics = {"protocol": "linear probe on frozen features",
               "n_train": len(train_ids), "n_test": len(test_ids),
               **with_ci(per_item, params.bootstrap_resamples, params.seed),
               "top5": result.top5, **{k: v for k, v in result.summary().items() if k != "top1"}}
    save_metrics(out_dir, metrics, per_item, test_ids)
    plot_confusion_matrix(result.confusion, [names[c] for c in result.classes],
                          out_dir / "confusion.png", title="Linear probe (test split)")


STAGE = register(Stage("probe", 1, "Linear probe on frozen features with bootstrap CIs.",
                       ProbeParams, run))
