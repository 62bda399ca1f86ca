"""Stage ``realtune``: RealTune / SynTune, a short tuning of a pretrained backbone.

* ``mode: ssl`` continues DINO from a pretraining artifact on a small unlabeled subset of
  a dataset (real: RealTune, synthetic: SynTune; SynBench Table 10), then the tuned teacher
  is evaluated frozen like any pretraining run.
* ``mode: supervised`` fine-tunes the backbone with a linear head on ``per_class`` labeled
  images of each downstream class (real: RealTune, synthetic images of the same classes:
  SynTune; SynBench Table 3) and reports its test top-1 with a bootstrap CI; the tuned
  backbone is then evaluated frozen (probe, k-NN, retrieval) as well.

Either way the artifact looks like a pretraining artifact (``teacher_backbone.safetensors``
and ``preprocessing.json``), plus ``subset.csv``: the ids of every image the tuning saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register

MODES = ("ssl", "supervised")


@dataclass(frozen=True)
class RealtuneParams:
    """Parameters of the ``realtune`` stage (config section ``realtune``)."""

    mode: str = doc("ssl (continue DINO on an unlabeled subset) or supervised (fine-tune "
                    "with a linear head on a labeled subset).", default="ssl")
    fraction: float = doc("ssl: share of the tuning dataset's training images (SynBench "
                          "Table 10 tunes on 7.7 % of ImageNet-100).", default=0.1)
    per_class: int = doc("supervised: labeled training images per class; 0 takes every "
                         "training image (the labels the linear probe reads: SynBench Table 3 "
                         "fine-tunes on the same real images its real runs used).", default=10)
    balance: str = doc("supervised: balanced (per_class each) or unbalanced (a linear ramp "
                       "around per_class with the same total, SynBench appendix).",
                       default="balanced")
    epochs: int = doc("supervised: fine-tuning epochs over the subset (ssl: the DINO "
                      "recipe's epochs, under realtune.ssl.dino; RealTune's schedule "
                      "synreal.dino.params.REALTUNE_SCHEDULE: 30 epochs, SynBench's ViT "
                      "setting).", default=10)
    batch_size: int = doc("supervised: images per step.", default=32)
    lr: float = doc("supervised: peak AdamW learning rate of the backbone (cosine decay).",
                    default=1e-4)
    head_lr_scale: float = doc("supervised: the new head's learning rate over the "
                               "backbone's.", default=10.0)
    weight_decay: float = doc("supervised: AdamW weight decay.", default=0.05)
    crop_scale: tuple = doc("supervised: RandomResizedCrop scale range of training views.",
                            default=(0.5, 1.0))
    label_smoothing: float = doc("supervised: cross-entropy label smoothing.", default=0.1)
    test_split: str = doc("supervised: split of the evaluation dataset the tuned classifier "
                          "is tested on (never tuned on).", default="test")
    seed: int = doc("Seed of the subset and of the tuning.", default=0)
    bootstrap_resamples: int = doc("supervised: resamples of the test top-1's 95 % CI.",
                                   default=1000)
    num_workers: int = doc("DataLoader workers.", default=0)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, not {self.mode!r}")
        for name in ("epochs", "batch_size", "bootstrap_resamples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.per_class < 0:
            raise ValueError(f"per_class must be 0 (every training image) or more, not "
                             f"{self.per_class}")


def run(spec: dict, out_dir: Path) -> None:
    """Tune as the spec's mode says; export the backbone in the pretraining format."""
    params = parse_params(RealtuneParams, spec["params"]["tune"], "realtune params")
    if params.mode == "ssl":
        _ssl(spec, params, Path(out_dir))
    else:
        _supervised(spec, params, Path(out_dir))


def _write_subset(subset, out_dir: Path) -> None:
    columns = [c for c in ("id", "split", "label", "label_name", "sha256") if c in subset]
    subset[columns].to_csv(out_dir / "subset.csv", index=False)


def _ssl(spec: dict, params: RealtuneParams, out_dir: Path) -> None:
    from synreal.artifacts import write_json_atomic
    from synreal.data.manifest import read_manifest
    from synreal.dino.augment import ViewPlan
    from synreal.dino.params import (
        STILL_SHARE,
        DinoParams,
        check_realtune_data,
        teacher_start_share,
        teacher_window_epochs,
    )
    from synreal.dino.plots import plot_training_log
    from synreal.dino.train import train_dino
    from synreal.realtune.subsets import fraction_subset
    from synreal.stages.generate import device

    dino = parse_params(DinoParams, spec["params"]["dino"], "realtune.ssl.dino")
    data = spec["inputs"]["data"]
    subset = fraction_subset(read_manifest(Path(data)), params.fraction, params.seed, data)
    check_realtune_data(dino, len(subset), f"realtune.ssl.params.fraction {params.fraction} "
                                           f"of {data}")
    start_share = teacher_start_share(dino, len(subset))
    window = teacher_window_epochs(dino.momentum_teacher, dino.batch_size, len(subset))
    print(f"realtune ssl: {len(subset)} images, {dino.epochs} epochs of "
          f"{len(subset) // dino.batch_size} steps; teacher momentum {dino.momentum_teacher} "
          f"averages over {window:.2f} epochs and keeps {start_share:.1%} of its start")
    if start_share > STILL_SHARE:
        print(f"warning: the tuned teacher keeps {start_share:.0%} of its start: lower "
              "realtune.ssl.dino.momentum_teacher or add epochs for a tuning that tunes.")
    _write_subset(subset, out_dir)
    summary = train_dino(dino, [(p,) for p in subset["path"]],
                         ViewPlan.single(dino.local_crops_number), out_dir,
                         device=device("realtune"), init_from=Path(spec["inputs"]["checkpoint"]))
    summary.update(n_images=len(subset), teacher_window_epochs=window,
                   teacher_start_share=start_share)
    write_json_atomic(out_dir / "summary.json", summary)
    plot_training_log(out_dir / "train_log.jsonl", out_dir / "loss_curve.png", dino.out_dim)


def _supervised(spec: dict, params: RealtuneParams, out_dir: Path) -> None:
    import numpy as np

    from synreal.artifacts import write_json_atomic
    from synreal.data.manifest import read_manifest
    from synreal.dino.checkpoint import export_backbone, load_backbone, read_preprocessing
    from synreal.errors import DataError
    from synreal.eval.leakage import assert_no_test_leakage
    from synreal.realtune.finetune import FinetuneRecipe, finetune, predict
    from synreal.realtune.subsets import per_class_subset
    from synreal.stages._evaluation import save_metrics, with_ci
    from synreal.stages.generate import device

    data, evaluation = spec["inputs"]["data"], spec["inputs"]["manifest"]
    subset = per_class_subset(read_manifest(Path(data)), params.per_class, params.seed,
                              params.balance, data)
    test_manifest = read_manifest(Path(evaluation))
    test = test_manifest[test_manifest["split"] == params.test_split].sort_values("id")
    if test.empty:
        raise DataError(f"{evaluation} has no {params.test_split!r} images to test on.")
    classes = sorted(test_manifest["label_name"].unique())
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(subset["label_name"]) - set(index))
    if unknown:
        raise DataError(f"{data}: tuning classes {unknown[:3]} are not classes of the "
                        f"evaluation dataset {evaluation}; generate the downstream classes.")
    assert_no_test_leakage(subset["id"], test["id"], subset.get("sha256"), test.get("sha256"))
    _write_subset(subset, out_dir)

    checkpoint = Path(spec["inputs"]["checkpoint"])
    backbone, preprocess = load_backbone(checkpoint)
    recipe = FinetuneRecipe(params.epochs, params.batch_size, params.lr, params.head_lr_scale,
                            params.weight_decay, tuple(params.crop_scale),
                            params.label_smoothing, params.seed, params.num_workers)
    target = device("realtune")
    model, losses = finetune(backbone, preprocess, list(subset["path"]),
                             subset["label_name"].map(index).to_numpy(), len(classes), recipe,
                             target)
    predicted = predict(model, preprocess, list(test["path"]), target)
    correct = (predicted == test["label_name"].map(index).to_numpy()).astype(np.float64)
    per_item = {"top1": correct}
    chosen = (f"all {len(subset)} training images" if params.per_class == 0 else
              f"{params.per_class} images per class ({params.balance})")
    metrics = {"protocol": f"supervised fine-tuning, {chosen}, {params.epochs} epochs: "
                           "the whole backbone "
                           f"and a new linear head, AdamW lr {params.lr} (head x"
                           f"{params.head_lr_scale}) cosine, weight decay "
                           f"{params.weight_decay}, batch {params.batch_size}, "
                           f"RandomResizedCrop scale {list(params.crop_scale)} + flip, label "
                           f"smoothing {params.label_smoothing}",
               "n_train": len(subset), "n_test": len(test),
               **with_ci(per_item, params.bootstrap_resamples, params.seed),
               "epoch_losses": losses}
    save_metrics(out_dir, metrics, per_item, test["id"].to_numpy())
    # the classifier (backbone + head) is kept as the "student" file of the artifact
    export_backbone(out_dir, model.backbone, model, read_preprocessing(checkpoint))
    write_json_atomic(out_dir / "summary.json", {"n_images": len(subset), "losses": losses})


# version 2: the DINO augmentation it trains with changed (official local-crop blur, crops at
# the decoded size), and the ssl summary records the teacher's window and start share.
STAGE = register(Stage("realtune", 2, "RealTune / SynTune: short ssl or supervised tuning.",
                       RealtuneParams, run, resumable=True))
