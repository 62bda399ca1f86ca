"""Stage ``retrieval``: mAP, mAP@R, P@1, R@k by cosine similarity, with bootstrap CIs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from synreal.params import doc, parse_params
from synreal.stages import Stage, register
from synreal.stages.probe import VIEWS


@dataclass(frozen=True)
class RetrievalParams:
    """Parameters of the ``retrieval`` stage."""

    features: str = doc("Feature view: cls (the last block's CLS token, DINO's k-NN "
                        "features, 384-d for ViT-S) or dino_linear (the linear protocol's "
                        "concatenation); evaluation.features must write it.", default="cls")
    query_split: str = doc("Split whose images are the queries (Pet: test).", default="test")
    gallery: str = doc("'queries' = each query searches the rest of its split (itself "
                       "excluded); or a split name (e.g. trainval) searched as gallery.",
                       default="queries")
    examples: int = doc("Queries shown in the retrieval example grid (top 8 each).", default=6)
    seed: int = doc("Bootstrap and example-selection seed.", default=0)
    bootstrap_resamples: int = doc("Bootstrap resamples for the 95 % CIs.", default=1000)

    def __post_init__(self) -> None:
        if self.features not in VIEWS:
            raise ValueError(f"features must be one of {list(VIEWS)}, not {self.features!r}")


def run(spec: dict, out_dir: Path) -> None:
    """Rank the gallery for every query; write per-query values, CIs and an example grid."""
    import numpy as np

    from synreal.eval.plots import plot_retrieval_examples
    from synreal.eval.retrieval import retrieval_per_query, top_k_neighbors
    from synreal.stages._evaluation import features_line, load_split, save_metrics, with_ci

    params = parse_params(RetrievalParams, spec["params"], "retrieval params")
    where = "evaluation.retrieval.features"
    queries = load_split(spec["inputs"]["features"], params.query_split, params.features, where)
    gallery = None if params.gallery == "queries" else load_split(
        spec["inputs"]["features"], params.gallery, params.features, where)
    q_labels = queries.column("label")
    per_query = retrieval_per_query(
        queries.embeddings, q_labels,
        None if gallery is None else gallery.embeddings,
        None if gallery is None else gallery.column("label"))
    per_item = {k: v for k, v in per_query.items() if k != "n_relevant"}
    searched = ("each query against the rest of its split" if gallery is None
                else f"gallery {params.gallery} ({len(gallery.column('id'))})")
    protocol = (f"retrieval by cosine similarity on L2-normalised {features_line(queries)}; "
                f"queries {params.query_split} ({len(q_labels)}), {searched}")
    metrics = {"protocol": protocol, "features": params.features,
               "n_queries": len(q_labels),
               "n_queries_no_relevant": int(np.isnan(per_item["map"]).sum()),
               **with_ci(per_item, params.bootstrap_resamples, params.seed)}
    save_metrics(out_dir, metrics, per_item, queries.column("id"))

    rng = np.random.default_rng(params.seed)
    shown = np.sort(rng.choice(len(q_labels), min(params.examples, len(q_labels)), False))
    source = queries if gallery is None else gallery
    if gallery is None:  # leave-one-out: rank within all queries, then keep the shown ones
        neighbours = top_k_neighbors(queries.embeddings, None, k=8)[0][shown]
    else:
        neighbours = top_k_neighbors(queries.embeddings[shown], gallery.embeddings, k=8)[0]
    paths = source.column("path")
    plot_retrieval_examples(queries.column("path")[shown], paths[neighbours],
                            source.column("label")[neighbours] == q_labels[shown][:, None],
                            out_dir / "retrieval_examples.png")


STAGE = register(Stage("retrieval", 2, "Retrieval mAP, mAP@R, P@1, R@k with bootstrap CIs.",
                       RetrievalParams, run))
