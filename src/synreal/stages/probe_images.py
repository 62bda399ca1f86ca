"""Stage ``probe_images``: DINO's linear probe with its training augmentation, on images.

DINO's ``eval_linear.py`` trains its linear layer on RandomResizedCrop + flip views of the
training images, drawn afresh every epoch through the frozen backbone; the ``probe`` stage
cannot, as it reads features extracted once. This stage loads the checkpoint's backbone and
runs :func:`~synreal.eval.dino_probe.dino_linear_probe_images`: the same head, optimiser, lr
grid, held-out selection and retraining as ``probe``'s ``dino_linear``, with the official
augmentation. The held-out part and test read the ``features`` stage's centre-crop
features of the same checkpoint (exactly the official evaluation transform), so only the
training passes run the backbone. Its outputs are the ``probe`` stage's (``metrics.json``
with ``top1`` and ``dino_linear_top1``, ``per_item.parquet``, ``confusion.png``), and the
tables read it in the probe's place. The plan runs it for ``evaluation.probe.train_on: images``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.errors import ConfigError, DataError
from synreal.params import doc, parse_params
from synreal.stages import Stage, register
from synreal.stages.probe import VIEWS


@dataclass(frozen=True)
class ProbeImagesParams:
    """Parameters of the ``probe_images`` stage (from ``evaluation.probe`` and ``.features``)."""

    features: str = doc("Feature view: dino_linear (CLS tokens of the last n_last_blocks "
                        "blocks) or cls (the last block's).", default="dino_linear")
    n_last_blocks: int = doc("Blocks concatenated by dino_linear (evaluation.features).",
                             default=4)
    avgpool: bool = doc("dino_linear: also the mean patch token (evaluation.features).",
                        default=False)
    dino_base_lrs: tuple = doc("Base learning rates (scaled by batch/256) tried on the "
                               "held-out part.", default=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2,
                                                          1e-1))
    dino_epochs: int = doc("Epochs, cosine schedule to 0 (official 100).", default=100)
    dino_batch_size: int = doc("Batch size (official 1024 = 128 x 8 GPUs).", default=1024)
    train_split: str = doc("Split the probe is trained on (Pet: trainval).", default="trainval")
    test_split: str = doc("Split it is evaluated on (Pet: test).", default="test")
    val_fraction: float = doc("Stratified share of the train split held out for selection.",
                              default=0.2)
    seed: int = doc("Seed of the held-out split, the order, the augmentation and the head.",
                    default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)
    num_workers: int = doc("DataLoader workers decoding and augmenting training images "
                           "(evaluation.features.num_workers).", default=2)

    def __post_init__(self) -> None:
        if self.features not in VIEWS:
            raise ValueError(f"features must be one of {list(VIEWS)}, not {self.features!r}")
        if not self.dino_base_lrs or min(self.dino_base_lrs) <= 0:
            raise ValueError("dino_base_lrs must be positive learning rates")
        for name in ("dino_epochs", "dino_batch_size", "n_last_blocks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


def run(spec: dict, out_dir: Path) -> None:
    """Train the heads on augmented training images; write the probe stage's outputs."""
    import torch

    from synreal.data.manifest import read_manifest
    from synreal.dino.checkpoint import load_backbone
    from synreal.eval.dino_probe import (
        DinoLinearConfig,
        dino_linear_probe_images,
        dino_train_transform,
    )
    from synreal.eval.extract import ImageFiles, embed_batch
    from synreal.stages.generate import device
    from synreal.stages.probe import load_probe_splits, write_probe_outputs

    params = parse_params(ProbeImagesParams, spec["params"], "probe_images params")
    train, test = load_probe_splits(spec, params.features, params.train_split,
                                    params.test_split)
    model, preprocess = load_backbone(Path(spec["inputs"]["checkpoint"]))
    depth = len(getattr(model, "blocks", ()))
    if params.features == "dino_linear" and params.n_last_blocks > depth:
        raise ConfigError(f"evaluation.features.n_last_blocks is {params.n_last_blocks} but the "
                          f"backbone has {depth} blocks; set it to at most {depth}.")
    parts = params.n_last_blocks + int(params.avgpool) if params.features == "dino_linear" else 1
    if parts * model.embed_dim != train.embeddings.shape[1]:
        raise DataError(
            f"{spec['inputs']['features']} holds {train.embeddings.shape[1]}-d "
            f"{params.features} features, but this backbone gives {parts * model.embed_dim}-d "
            f"ones with n_last_blocks {params.n_last_blocks} and avgpool {params.avgpool}; "
            "evaluation.features and the features file disagree: rerun its features job.")
    where = device("probe_images")
    model = model.eval().to(where)
    paths = read_manifest(spec["inputs"]["manifest"]).set_index("id")["path"]
    images = ImageFiles(paths.loc[train.column("id")].tolist(), transform=dino_train_transform(
        preprocess.crop, preprocess.mean, preprocess.std))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=where.startswith("cuda"))

    def embed(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast:
            return embed_batch(model, batch, params.features, params.n_last_blocks,
                               params.avgpool)

    config = DinoLinearConfig(tuple(params.dino_base_lrs), params.dino_epochs,
                              params.dino_batch_size, params.val_fraction, params.seed,
                              train_on="images")
    result = dino_linear_probe_images(embed, images, train.embeddings, train.column("label"),
                                      test.embeddings, test.column("label"), config,
                                      params.num_workers, where)
    write_probe_outputs(out_dir, params, {"dino_linear": result},
                        {"dino_linear": config.describe()}, train, test)


STAGE = register(Stage("probe_images", 1, "DINO's linear probe on augmented images (GPU).",
                       ProbeImagesParams, run))
