"""Stage ``probe``: linear classifiers on frozen features (train split only), top-1/top-5 on test.

``protocols`` names the probes fitted on the same features, the first being the reported
one (``top1``, ``top5``, the confusion plot): ``dino_linear``, DINO's ``eval_linear.py``
(SGD, batch 1024, 100 epochs; :func:`~synreal.eval.dino_probe.dino_linear_probe_features`),
and ``logistic``, the fast full-batch Adam logistic regression on standardised features
(:mod:`synreal.eval.probe`). Every protocol also writes ``<protocol>_top1`` (with its CI and
per-image values) and ``<protocol>_top5``, the tables' second column.

With ``train_on: images`` the plan runs stage ``probe_images`` instead: ``dino_linear`` with the
official script's RandomResizedCrop + flip on the training images, a GPU job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register

PROTOCOLS = ("dino_linear", "logistic")
VIEWS = ("cls", "dino_linear")  # stages.features: the views a features file can offer
ONS = ("features", "images")


@dataclass(frozen=True)
class ProbeParams:
    """Parameters of the ``probe`` stage (linear probe on frozen features)."""

    train_on: str = doc("What the dino_linear probe trains on. features: each training image's "
                  "centre-crop features, extracted once (a CPU job in seconds). images: "
                  "RandomResizedCrop + flip drawn afresh every epoch through the frozen "
                  "backbone, as DINO's eval_linear.py (stage probe_images: a GPU job of "
                  "dino_epochs passes over 80 % of the train split to pick the lr, then "
                  "dino_epochs over all of it); only protocols [dino_linear].",
                  default="features")
    features: str = doc("Feature view the probes read: dino_linear (DINO's linear protocol: "
                        "CLS of the last n_last_blocks blocks, 1,536-d for ViT-S) or cls (the "
                        "last block's CLS token); evaluation.features must write it.",
                        default="dino_linear")
    protocols: tuple = doc("Probes fitted, the first one reported as top1: dino_linear (DINO "
                           "eval_linear's SGD recipe) and/or logistic (fast Adam logistic "
                           "regression, lrs x weight_decays).",
                           default=("dino_linear", "logistic"))
    dino_base_lrs: tuple = doc("dino_linear: base learning rates (scaled by batch/256) tried "
                               "on the held-out part (official default 0.001, 'tweak per "
                               "checkpoint').", default=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2,
                                                         1e-1))
    dino_epochs: int = doc("dino_linear: epochs, cosine schedule to 0 (official 100).",
                           default=100)
    dino_batch_size: int = doc("dino_linear: batch size (official 1024 = 128 x 8 GPUs).",
                               default=1024)
    train_split: str = doc("Split the probe is trained on (Pet: trainval).", default="trainval")
    test_split: str = doc("Split it is evaluated on (Pet: test); never seen in training.",
                          default="test")
    lrs: tuple = doc("logistic: learning rates tried on a held-out part of the train split.",
                     default=(1e-3, 1e-2, 1e-1))
    weight_decays: tuple = doc("logistic: weight decays tried with each learning rate.",
                               default=(0.0, 1e-4, 1e-3, 1e-2))
    steps: int = doc("logistic: full-batch optimisation steps per fit.", default=300)
    val_fraction: float = doc("Stratified share of the train split held out for selection.",
                              default=0.2)
    seed: int = doc("Seed of the held-out split and the probe's initialisation.", default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)

    def __post_init__(self) -> None:
        if self.train_on not in ONS:
            raise ValueError(f"train_on must be one of {list(ONS)}, not {self.train_on!r}")
        if self.train_on == "images" and tuple(self.protocols) != ("dino_linear",):
            raise ValueError(f"train_on: images trains DINO's linear probe only; set protocols: "
                             f"[dino_linear] (not {list(self.protocols)}) or train_on: features")
        if self.features not in VIEWS:
            raise ValueError(f"features must be one of {list(VIEWS)}, not {self.features!r}")
        unknown = [p for p in self.protocols if p not in PROTOCOLS]
        if not self.protocols or unknown or len(set(self.protocols)) < len(self.protocols):
            raise ValueError(f"protocols must be distinct names from {list(PROTOCOLS)}, not "
                             f"{list(self.protocols)}")
        if not self.dino_base_lrs or min(self.dino_base_lrs) <= 0:
            raise ValueError("dino_base_lrs must be positive learning rates")
        for name in ("dino_epochs", "dino_batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


def run(spec: dict, out_dir: Path) -> None:
    """Fit each probe, write metrics with CIs, per-image correctness and the confusion plot."""
    params = parse_params(ProbeParams, spec["params"], "probe params")
    train, test = load_probe_splits(spec, params.features, params.train_split,
                                    params.test_split)
    results, lines = {}, {}
    for protocol in params.protocols:
        fit, lines[protocol] = _probe(protocol, params)
        results[protocol] = fit(train.embeddings, train.column("label"), test.embeddings,
                                test.column("label"))
    write_probe_outputs(out_dir, params, results, lines, train, test)


def load_probe_splits(spec: dict, view: str, train_split: str, test_split: str):
    """The train and test rows of the spec's features file in ``view``, checked for leaks."""
    from synreal.data.manifest import read_manifest
    from synreal.eval.leakage import assert_no_test_leakage
    from synreal.stages._evaluation import load_split

    where = "evaluation.probe.features"
    train = load_split(spec["inputs"]["features"], train_split, view, where)
    test = load_split(spec["inputs"]["features"], test_split, view, where)
    manifest = read_manifest(spec["inputs"]["manifest"]).set_index("id")
    train_ids, test_ids = train.column("id"), test.column("id")
    assert_no_test_leakage(train_ids, test_ids, manifest.loc[train_ids, "sha256"],
                           manifest.loc[test_ids, "sha256"])
    return train, test


def write_probe_outputs(out_dir: Path, params, results: dict, lines: dict, train,
                        test) -> None:
    """metrics.json (the first protocol of ``results`` reported), per-image correctness, plot.

    ``params``: the stage's params (``features``, splits, ``seed``, ``bootstrap_resamples``);
    ``results``/``lines``: each protocol's :class:`~synreal.eval.probe.ProbeResult` and
    one-line description, in the order the protocols ran.
    """
    import numpy as np

    from synreal.eval.plots import plot_confusion_matrix
    from synreal.stages._evaluation import features_line, save_metrics, with_ci

    protocols = list(results)
    main = results[protocols[0]]
    per_item = {"top1": main.correct.astype(np.float64),
                **{f"{p}_top1": r.correct.astype(np.float64) for p, r in results.items()}}
    names = dict(zip(test.column("label"), test.column("label_name"), strict=True))
    train_ids, test_ids = train.column("id"), test.column("id")
    where_from = (f"{features_line(train)}; train {params.train_split} ({len(train_ids)}), "
                  f"test {params.test_split} ({len(test_ids)})")
    metrics = {"protocol": f"linear probe {protocols[0]}: {lines[protocols[0]]}; on "
                           f"{where_from}",
               "protocols": {p: f"{line}; on {where_from}" for p, line in lines.items()},
               "features": params.features,
               "n_train": len(train_ids), "n_test": len(test_ids),
               **with_ci(per_item, params.bootstrap_resamples, params.seed),
               "top5": main.top5,
               **{f"{p}_top5": r.top5 for p, r in results.items()},
               **{k: v for k, v in main.summary().items() if k not in ("top1", "top5")},
               "selection": {p: r.summary()["grid"] for p, r in results.items()}}
    save_metrics(out_dir, metrics, per_item, test_ids)
    plot_confusion_matrix(main.confusion, [names[c] for c in main.classes],
                          out_dir / "confusion.png",
                          title=f"Linear probe, {protocols[0]} (test split)")


def _probe(protocol: str, params: ProbeParams):
    """``(fit(train_x, train_y, test_x, test_y) -> ProbeResult, one-line description)``."""
    from functools import partial

    from synreal.eval.dino_probe import DinoLinearConfig, dino_linear_probe_features
    from synreal.eval.probe import ProbeConfig, linear_probe

    if protocol == "dino_linear":
        config = DinoLinearConfig(tuple(params.dino_base_lrs), params.dino_epochs,
                                  params.dino_batch_size, params.val_fraction, params.seed)
        return partial(dino_linear_probe_features, config=config), config.describe()
    config = ProbeConfig(lrs=tuple(params.lrs), weight_decays=tuple(params.weight_decays),
                         steps=params.steps, val_fraction=params.val_fraction, seed=params.seed)
    return partial(linear_probe, config=config), (
        f"logistic regression on standardised features: full-batch Adam, {params.steps} steps "
        f"cosine, L2 weight decay; lr in {list(params.lrs)} x weight decay in "
        f"{list(params.weight_decays)} picked on a held-out {params.val_fraction:.0%} of the "
        "train split then retrained on all of it")


# version 4: dino_linear's protocol line says that a split smaller than one batch is one step
# of its own size, with the lr scaled by it (the numbers are version 2's).
STAGE = register(Stage("probe", 4, "Linear probes on frozen features with bootstrap CIs.",
                       ProbeParams, run))
