"""Table builders: one function per paper table, reading finished artifacts.

Every builder reads only artifact directories named in its params (from the study plan),
so each number in a table is traceable by key to the artifact that produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from synreal.artifacts import read_spec
from synreal.data.manifest import read_manifest
from synreal.report.table_writer import write_table


def _resolutions(manifest: pd.DataFrame, most: int = 3) -> str:
    sizes = (manifest["width"].astype(str) + "x" + manifest["height"].astype(str)).value_counts()
    shown = ", ".join(sizes.index[:most])
    return shown + (f" (+{len(sizes) - most} more)" if len(sizes) > most else "")


def _source(spec: dict) -> str:
    if spec["stage"] == "generate":
        return f"synthetic ({spec['params']['backend']})"
    return f"real ({spec['params']['format']})"


def datasets_table(params: dict, out_dir: Path) -> None:
    """Dataset summary: source, images per split, classes, resolution, skipped files, key."""
    rows = []
    for name, artifact in {**params["datasets"], **params.get("synthetic", {})}.items():
        artifact = Path(artifact)
        manifest = read_manifest(artifact / "manifest.parquet")
        problems_file = artifact / "problems.csv"
        problems = pd.read_csv(problems_file) if problems_file.is_file() else pd.DataFrame()
        spec = read_spec(artifact)
        splits = manifest.groupby("split").size().to_dict()
        rows.append({
            "dataset": name,
            "source": _source(spec),
            "images": len(manifest),
            "splits": ", ".join(f"{s}: {n}" for s, n in sorted(splits.items())),
            "classes": manifest["label"].nunique(),
            "resolution": _resolutions(manifest),
            "skipped": len(problems),
            "key": spec["key"],
        })
    caption = (f"Datasets of study '{params['study']}': real datasets after ingest and the "
               "synthetic datasets generated to match them; images per split, classes, image "
               "resolutions, files skipped as unreadable, and the artifact key "
               "(results/ingest/<key>/ or results/generate/<key>/).")
    write_table(pd.DataFrame(rows), out_dir, "datasets", caption)


def _caption(params: dict, what: str) -> str:
    import json

    facts = params["facts"]
    first = next(iter(params["runs"].values()))
    probe = json.loads((Path(first["probe"]) / "metrics.json").read_text())
    images = json.loads((Path(first["pretrain"]) / "summary.json").read_text())["n_images"]
    return (f"{what} Study '{params['study']}'. Backbone {facts['model']}, DINO "
            f"{facts['epochs']} epochs on {images} images, seed {facts['seed']}; evaluation on "
            f"{facts['eval_dataset']} ({probe['n_train']} {facts['n_train']} / "
            f"{probe['n_test']} {facts['n_test']} images), frozen {facts['protocol']} features. "
            "Cells: % with 95 % bootstrap CI over test images (queries for retrieval, "
            f"{facts['resamples']} resamples).")


def main_table(params: dict, out_dir: Path) -> None:
    """The study proposal: DINO on real vs synthetic data, frozen Pet evaluation, paired diff."""
    from synreal.report.metrics import MAIN_METRICS, differs, paired_difference, run_row

    runs = params["runs"]
    rows = [run_row(label, run) for label, run in runs.items()]
    (label_a, run_a), (label_b, run_b) = list(runs.items())[:2]
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    diff = {"pretraining data": f"{label_b} - {label_a} (paired)"}
    verdict = {"pretraining data": "differ? (95 % CI excludes 0)"}
    for title, stage, key in MAIN_METRICS:
        cell = paired_difference(run_a, run_b, stage, key, resamples, seed)
        diff[title], verdict[title] = str(cell), differs(cell)
    caption = _caption(params, f"DINO pretrained on {label_a} vs {label_b} images of equal "
                               "number, classes and resolution; the last rows give the paired "
                               "difference and whether it is significant.")
    write_table(pd.DataFrame([*rows, diff, verdict]), out_dir, "main", caption)


def _q(block: dict, digits: int = 2) -> str:
    if not block or not block.get("n"):
        return "n/a"
    return (f"{block['q50']:.{digits}f} [{block['q25']:.{digits}f}, {block['q75']:.{digits}f}]"
            f" (IQR {block['iqr']:.{digits}f})")


def _rate(value) -> str:
    return "not measured" if value is None else f"{100 * value:.1f}"


def synbench_table(params: dict, out_dir: Path) -> None:
    """SynBench measures per dataset: consistency, scale, brightness, person blocking, more."""
    import json

    rows = []
    for name, artifact in params["audits"].items():
        summary = json.loads((Path(artifact) / "summary.json").read_text())
        consistency = summary.get("consistency", {})
        reference = consistency.get("reference_rate")
        fid = summary.get("fid", {}) or {}
        dups = summary.get("near_duplicates", {})
        rows.append({
            "dataset": name,
            "images": summary["n_images"],
            "class consistency %": _rate(consistency.get("rate")),
            "real reference %": _rate(reference),
            "object scale median [q25, q75]": _q(summary.get("scale", {})),
            "brightness L* median [q25, q75]": _q(summary.get("brightness", {}), 1),
            "person blocking %": _rate(summary.get("person_blocking", {}).get("rate")),
            "diversity": f"{summary['diversity']['mean_pairwise_cosine_distance']:.3f}"
            if summary.get("diversity") else "n/a",
            "FID": f"{fid['fid']:.2f}" if fid.get("fid") is not None else "n/a",
            "near-dup pairs": dups.get("pairs_within", "n/a"),
            "test leaks": dups.get("test_matches", 0) + dups.get("exact_test", 0),
            "key": Path(artifact).name,
        })
    caption = (f"SynBench audit of study '{params['study']}' (SynBench Sec. 3, Fig. 4-5): class "
               "consistency of each dataset's images with a reference classifier trained on the "
               "real images (beside it, the real data's own held-out consistency); object scale "
               "(box area / image) and CIELAB L* brightness as median [q25, q75]; share of "
               "person-blocked objects; mean pairwise cosine distance (MixDiff 5.3); FID to the "
               "real counterpart; near-duplicate pairs inside the set and matches with the "
               "downstream test set (a leakage warning when > 0).")
    write_table(pd.DataFrame(rows), out_dir, "synbench", caption)


BUILDERS: dict[str, Callable[[dict, Path], None]] = {
    "synbench": synbench_table,
    "datasets": datasets_table,
    "main": main_table,
}
