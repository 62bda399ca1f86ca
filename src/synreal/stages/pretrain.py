"""Stage ``pretrain``: DINO on real, synthetic, mixed or MixDiff-paired data (resumable)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from synreal.dino.params import DinoParams
from synreal.errors import ConfigError
from synreal.params import parse_params
from synreal.stages import Stage, register

#: The data source of the main table's random-init control: DINO's starting point, untrained.
RANDOM_INIT = "random_init"

#: MixDiff view splits (MixDiff Table 7): crops from the real image / its variation.
DEFAULT_VIEWS = {"real_global": 1, "real_local": 6, "synthetic_global": 1, "synthetic_local": 2}


def resolve(dino: dict, run: dict, name: str) -> dict:
    """Resolved params of one pretraining run: the DINO recipe plus its data source."""
    recipe = parse_params(DinoParams, dino, f"pretrain params of run {name}")
    source = run["source"]
    fraction = run.get("real_fraction", 0.5)
    if source == "mix" and fraction in (0.0, 1.0):
        # 0 % and 100 % real are the synthetic and real runs: same images, same key
        source = "real" if fraction == 1.0 else "synthetic"
    data = {"source": source}
    if source == "mix":
        data["real_fraction"] = fraction
    if source == "mixdiff":
        views = {**DEFAULT_VIEWS, **run.get("views", {})}
        if views["real_global"] + views["synthetic_global"] != 2:
            raise ConfigError(f"pretrain.runs.{name}.views: real_global + synthetic_global must "
                              "be 2 (the teacher's two global crops).")
        data["views"] = views
        if recipe.local_crops_number != views["real_local"] + views["synthetic_local"]:
            recipe = parse_params(DinoParams, {**dino, "local_crops_number":
                                               views["real_local"] + views["synthetic_local"]},
                                  f"pretrain params of run {name}")
    dino_resolved = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}
    return {"dino": dino_resolved, "data": data}


def run(spec: dict, out_dir: Path) -> None:
    """Train in the resumable work directory; export the teacher backbone and a loss plot."""
    from synreal.artifacts import write_json_atomic
    from synreal.data.manifest import read_manifest
    from synreal.dino.augment import ViewPlan
    from synreal.dino.plots import plot_training_log
    from synreal.dino.sources import build_samples
    from synreal.dino.train import train_dino
    from synreal.ranks import barrier, process_rank
    from synreal.stages.generate import device

    params = parse_params(DinoParams, spec["params"]["dino"], "pretrain params")
    data = spec["params"]["data"]
    if data["source"] == RANDOM_INIT:  # the random-init control: no data, no step
        from synreal.dino.train import export_initialisation

        summary = export_initialisation(params, out_dir)
        summary["n_images"] = 0
        write_json_atomic(out_dir / "summary.json", summary)
        return
    manifests = {role: read_manifest(Path(path)) for role, path in spec["inputs"].items()}
    samples = build_samples(data["source"], manifests.get("real"), manifests.get("synthetic"),
                            data.get("real_fraction", 1.0), params.seed)
    if data["source"] == "mixdiff":
        plan = ViewPlan.mixdiff(**data["views"])
    else:
        plan = ViewPlan.single(params.local_crops_number)
    summary = train_dino(params, samples, plan, out_dir, device=device("pretrain"))
    rank, world, _ = process_rank()
    if world > 1:  # under torchrun every process trains; rank 0 alone writes the artifact
        barrier()
        if rank != 0:
            return
    summary["n_images"] = len(samples)
    write_json_atomic(out_dir / "summary.json", summary)
    plot_training_log(out_dir / "train_log.jsonl", out_dir / "loss_curve.png", params.out_dim)


STAGE = register(Stage("pretrain", 2, "DINO pretraining on real / synthetic / mixed data.",
                       DinoParams, run, resumable=True))
