"""Stage ``knn``: weighted k-NN accuracy on frozen features (DINO eval_knn protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register
from synreal.stages.probe import VIEWS


@dataclass(frozen=True)
class KnnParams:
    """Parameters of the ``knn`` stage."""

    features: str = doc("Feature view: cls (the last block's CLS token, DINO's k-NN "
                        "features, 384-d for ViT-S) or dino_linear (the linear protocol's "
                        "concatenation); evaluation.features must write it.", default="cls")
    train_split: str = doc("Split whose features vote (Pet: trainval).", default="trainval")
    test_split: str = doc("Split that is classified (Pet: test).", default="test")
    ks: tuple = doc("Numbers of neighbours (DINO reports 10, 20, 100, 200).",
                    default=(10, 20, 100, 200))
    temperature: float = doc("Vote weight exp(cosine / T) (DINO: 0.07).", default=0.07)
    seed: int = doc("Bootstrap seed.", default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)

    def __post_init__(self) -> None:
        if self.features not in VIEWS:
            raise ValueError(f"features must be one of {list(VIEWS)}, not {self.features!r}")


def run(spec: dict, out_dir: Path) -> None:
    """Classify the test split by weighted vote of its k nearest training features."""
    import numpy as np

    from synreal.eval.knn import knn_correct
    from synreal.stages._evaluation import features_line, load_split, save_metrics, with_ci

    params = parse_params(KnnParams, spec["params"], "knn params")
    where = "evaluation.knn.features"
    train = load_split(spec["inputs"]["features"], params.train_split, params.features, where)
    test = load_split(spec["inputs"]["features"], params.test_split, params.features, where)
    ks = tuple(k for k in params.ks if k <= len(train.column("id")))
    correct = knn_correct(train.embeddings, train.column("label"), test.embeddings,
                          test.column("label"), ks=ks, temperature=params.temperature)
    per_item = {f"top1_k{k}": np.asarray(v, dtype=np.float64) for k, v in correct.items()}
    protocol = (f"DINO weighted k-NN (eval_knn): vote exp(cosine / {params.temperature:g}) of "
                f"the k nearest, k in {list(ks)}, on L2-normalised {features_line(train)}; "
                f"{params.train_split} ({len(train.column('id'))}) votes for "
                f"{params.test_split} ({len(test.column('id'))})")
    metrics = {"protocol": protocol, "features": params.features,
               "n_train": len(train.column("id")), "n_test": len(test.column("id")),
               "skipped_ks": [k for k in params.ks if k not in ks],
               **with_ci(per_item, params.bootstrap_resamples, params.seed)}
    save_metrics(out_dir, metrics, per_item, test.column("id"))


STAGE = register(Stage("knn", 2, "Weighted k-NN accuracy (DINO protocol) with bootstrap CIs.",
                       KnnParams, run))
