"""Stage ``knn``: weighted k-NN accuracy on frozen features (DINO eval_knn protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register


@dataclass(frozen=True)
class KnnParams:
    """Parameters of the ``knn`` stage."""

    train_split: str = doc("Split whose features vote (Pet: trainval).", default="trainval")
    test_split: str = doc("Split that is classified (Pet: test).", default="test")
    ks: tuple = doc("Numbers of neighbours (DINO reports 10, 20, 100, 200).",
                    default=(10, 20, 100, 200))
    temperature: float = doc("Vote weight exp(cosine / T) (DINO: 0.07).", default=0.07)
    seed: int = doc("Bootstrap seed.", default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)


def run(spec: dict, out_dir: Path) -> None:
    """Classify the test split by weighted vote of its k nearest training features."""
    import numpy as np

    from synreal.eval.knn import knn_correct
    from synreal.stages._evaluation import load_split, save_metrics, with_ci

    params = parse_params(KnnParams, spec["params"], "knn params")
    train = load_split(spec["inputs"]["features"], params.train_split)
    test = load_split(spec["inputs"]["features"], params.test_split)
    ks = tuple(k for k in params.ks if k <= len(train.column("id")))
    correct = knn_correct(train.embeddings, train.column("label"), test.embeddings,
                          test.column("label"), ks=ks, temperature=params.temperature)
    per_item = {f"top1_k{k}": np.asarray(v, dtype=np.float64) for k, v in correct.items()}
    metrics = {"protocol": f"weighted k-NN, cosine, T={params.temperature}",
               "n_train": len(train.column("id")), "n_test": len(test.column("id")),
               "skipped_ks": [k for k in params.ks if k not in ks],
               **with_ci(per_item, params.bootstrap_resamples, params.seed)}
    save_metrics(out_dir, metrics, per_item, test.column("id"))


STAGE = register(Stage("knn", 1, "Weighted k-NN accuracy (DINO protocol) with bootstrap CIs.",
                       KnnParams, run))
