"""Table builders: one function per paper table, reading finished artifacts.

Every builder reads only artifact directories named in its params (from the study plan),
so each number in a table is traceable by key to the artifact that produced it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from synreal.artifacts import read_spec
from synreal.data.manifest import read_manifest
from synreal.dino.params import STILL_SHARE
from synreal.dino.verdict import LOG_FILE, run_verdict
from synreal.report.table_writer import write_table

if TYPE_CHECKING:
    from synreal.report.metrics import Cell


def _resolutions(manifest: pd.DataFrame, most: int = 3) -> str:
    sizes = (manifest["width"].astype(str) + "x" + manifest["height"].astype(str)).value_counts()
    shown = ", ".join(sizes.index[:most])
    return shown + (f" (+{len(sizes) - most} more)" if len(sizes) > most else "")


def _source(spec: dict) -> str:
    if spec["stage"] == "generate":
        return f"synthetic ({spec['params']['backend']})"
    if spec["stage"] == "control":
        return f"control ({spec['params']['part']})"
    return f"real ({spec['params']['format']})"


def datasets_table(params: dict, out_dir: Path) -> None:
    """Dataset summary: source, splits, classes, resolution, skipped files, making, key."""
    from synreal.report.made_by import generation_text

    rows = []
    artifacts = {**params["datasets"], **params.get("synthetic", {})}
    for name in params.get("order", artifacts):
        artifact = Path(artifacts[name])
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
            "made by": params.get("made", {}).get(name) or (
                generation_text(spec["params"], manifest["label_name"].unique())
                if spec["stage"] == "generate" else ""),
            "key": spec["key"],
        })
    caption = (f"Datasets of study '{params['study']}': real datasets after ingest, the "
               "synthetic datasets generated to match them (the guidance sweep's other "
               "scales as <generator>@cfg<scale>) and the main table's control sets; images "
               "per split, classes, image resolutions, files skipped as unreadable, how each "
               "was made (model, prompts, guidance, sampler, sizes), and the artifact key "
               "(results/<stage>/<key>/: ingest, generate or control).")
    write_table(pd.DataFrame(rows), out_dir, "datasets", caption)


def _runs(params: dict) -> dict:
    """The table's rows in the plan's order (spec JSON sorts keys, so the order is listed)."""
    runs = params["runs"]
    return {name: runs[name] for name in params.get("order", sorted(runs))}


def _caption(params: dict, what: str) -> str:
    facts = params["facts"]
    first = next(iter(_runs(params).values()))
    probe = json.loads((Path(first["probe"]) / "metrics.json").read_text())
    per_row = _pretraining_facts(params)
    trained = {row["images"] for row in per_row.values() if row["steps"]}
    on_images = f" on {trained.pop()} images" if len(trained) == 1 else ""
    changes, recipe = facts.get("recipe"), ""
    if changes is not None:  # the settings that make it not (or not only) DINO's recipe
        recipe = (f" (settings unlike the official main_dino.py defaults: {', '.join(changes)})"
                  if changes else " (otherwise the official main_dino.py defaults)")
    return (f"{what} Study '{params['study']}'. Backbone {facts['model']}, DINO "
            f"{facts['epochs']} epochs{on_images}{recipe}, {_seeds_text(params)}; "
            f"evaluation on {facts['eval_dataset']} ({probe['n_train']} {facts['n_train']} / "
            f"{probe['n_test']} {facts['n_test']} images), frozen features. "
            f"{_rows_text(per_row)}"
            f"{_protocols_text(first)}{_cells_text(params)}{_collapse_warning(params)}")


def _pretraining_facts(params: dict) -> dict[str, dict]:
    """Per row label (its first column), what its backbone was pretrained on and how.

    Read from each row's first seed's pretraining artifact (its summary and spec), so a caption
    states what ran: the data in words (from the plan), images, DINO steps, crops, epochs and
    seeds. Rows that share a pretraining run (RealTune's, fine-tuning's) are listed once.
    """
    from synreal.report.metrics import replicates

    facts = {}
    for name, run in _runs(params).items():
        column, value = next(iter(_labels(run).items()), (None, name))
        label = value if isinstance(value, str) or column is None else f"{column} {value}"
        pretrain = Path(run["pretrain"])
        if label in facts or pretrain.parent.name != "pretrain":
            continue  # a RealTune row: its pretraining run is the vanilla row's
        summary = json.loads((pretrain / "summary.json").read_text())
        spec = read_spec(pretrain)["params"]
        dino, views = spec["dino"], spec["data"].get("views")
        crops = (f"{views['real_global'] + views['synthetic_global']} global + "
                 f"{views['real_local'] + views['synthetic_local']} local" if views else
                 f"2 global + {dino['local_crops_number']} local")
        seeds = [r.get("seed", params["facts"]["seed"]) for r in replicates(run)]
        facts[label] = {"data": run.get("data"), "images": summary["n_images"],
                        "steps": summary["total_steps"], "crops": crops,
                        "epochs": dino["epochs"], "seeds": ", ".join(map(str, seeds))}
    return facts


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _fact_text(key: str, value) -> str:
    if key == "seeds":
        return f"seed{'s' if ',' in value else ''} {value}"
    return f"crops {value}" if key == "crops" else f"{value} epochs"


def _rows_text(per_row: dict[str, dict]) -> str:
    """One sentence naming each row's pretraining data, images and DINO steps.

    Crops, epochs and seeds are named per row where the trained rows differ in them (the
    recipe above is the first row's): MixDiff splits 8 local crops where the others take the
    recipe's, a mix run may have one seed where the ends have several.
    """
    if not per_row:
        return ""
    trained = [f for f in per_row.values() if f["steps"]]
    differ = [key for key in ("crops", "epochs", "seeds")
              if len({f[key] for f in trained}) > 1]
    parts = []
    for label, f in per_row.items():
        if not f["steps"]:
            parts.append(f"'{label}': untrained")
            continue
        data = f" = {f['data']}" if f["data"] else ""
        extra = "".join(f", {_fact_text(key, f[key])}" for key in differ)
        parts.append(f"'{label}'{data}: {_count(f['images'], 'image')}, "
                     f"{_count(f['steps'], 'DINO step')}{extra}")
    return "Pretraining per row: " + "; ".join(parts) + ". "


#: Evaluation stages whose metrics.json names its protocol, and the columns they fill.
PROTOCOL_COLUMNS = {"probe": "Linear top-1", "knn": "k-NN", "retrieval": "Retrieval"}


def _protocols_text(row: dict) -> str:
    """Each column's protocol, features and settings, as its own metrics.json states them."""
    parts = []
    for stage, column in PROTOCOL_COLUMNS.items():
        metrics = Path(row[stage]) / "metrics.json" if row.get(stage) else None
        if metrics is not None and metrics.is_file():
            protocol = json.loads(metrics.read_text()).get("protocol")
            if protocol:
                parts.append(f"{column}: {protocol}.")
    return " ".join(parts) + " " if parts else ""


def _seeds_text(params: dict) -> str:
    """The training seeds of the table's rows ("seed 0", or "seeds 0, 1")."""
    from synreal.report.metrics import replicates

    seeds = sorted({r.get("seed", params["facts"]["seed"])
                    for run in _runs(params).values() for r in replicates(run)})
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"


def _cells_text(params: dict) -> str:
    """What a cell is: one seed's CI over test images, or the mean over seeds with a 2-level CI."""
    from synreal.report.metrics import replicates, seed_count

    resamples = params["facts"]["resamples"]
    if all(len(replicates(run)) == 1 for run in _runs(params).values()):
        return ("Cells: % with 95 % bootstrap CI over test images (queries for retrieval, "
                f"{resamples} resamples).")
    figure = (f" figure {params['figure']}: each seed's value beside the mean."
              if params.get("figure") else "")
    return (f"Cells: %, mean over {seed_count(_runs(params))} (each row's training seeds), "
            "95 % CI over seeds and test images: a two-level bootstrap that draws seeds, then "
            "test images (queries for retrieval) within each drawn seed "
            f"({resamples} resamples);{figure} With 2 seeds the seed level is coarse (it sees "
            "about half the seed variance).")


def _collapsed_runs(params: dict) -> dict[str, tuple[str, str]]:
    """The table's runs whose DINO teacher or student had collapsed when training ended.

    Run folder -> (run name, its row's label with seed and kind). The verdict is read from each
    DINO run's training log (the mean statistics of its last steps), so runs trained before
    the verdict averaged its last steps get the same one.
    """
    from synreal.report.metrics import replicates

    flagged = {}
    # a row is named by its first label unless other rows share it (realtune's "real / SynTune"),
    # and a run several rows read (pretrain_finetune's) by what those rows share
    rows_of, firsts = {}, {}
    for run in _runs(params).values():
        rows_of.setdefault(run["pretrain"], []).append(run)
        first = next(iter(_labels(run).values()), None)
        firsts[first] = firsts.get(first, 0) + 1
    for name, run in _runs(params).items():
        seeds = replicates(run)
        first = next(iter(_labels(run).values()), None)
        by_first = len(rows_of[run["pretrain"]]) > 1 or firsts[first] == 1
        for seed in seeds:  # every replicate seed's run
            run_dir = Path(seed["pretrain"])
            if not (run_dir / LOG_FILE).is_file():  # not a DINO run (supervised fine-tuning)
                continue
            dino = read_spec(run_dir)["params"]["dino"]
            if kind := run_verdict(run_dir / LOG_FILE, dino["warmup_epochs"], dino["out_dim"]):
                labels = list(_labels(run).values())
                row = " / ".join(str(v) for v in (labels[:1] if by_first else labels))
                label = f"{row} seed {seed['seed']}" if len(seeds) > 1 else row
                flagged.setdefault(run_dir.name, (name, f"{label} ({kind})"))
    return flagged


def _collapse_warning(params: dict) -> str:
    """A sentence naming the runs whose DINO teacher or student had collapsed when training ended.

    Their last training targets, or their student's outputs, carried no information about
    the image, so their backbones may be degenerate: a reader must know before comparing
    their rows. Empty when no run collapsed.
    """
    flagged = _collapsed_runs(params)
    if not flagged:
        return ""
    return (" WARNING: collapsed DINO run at the end of pretraining (uniform or dominant: "
            "the teacher's targets no longer told images apart; student: the student's "
            "outputs no longer depended on the image; the backbone may be degenerate): "
            f"{', '.join(label for _, label in flagged.values())}; see the run's "
            "train_log.jsonl and the README's 'When DINO does not learn'.")


def _labels(run: dict) -> dict:
    """A row's label columns in the order the plan gave them (its JSON sorted the keys)."""
    labels = run.get("labels", {})
    return {column: labels[column] for column in run.get("label_columns", labels)}


def _run_rows(params: dict, metrics=None, paper_title: str | None = None) -> list[dict]:
    """One row per run: its labels, seeds, a CI cell per metric, the paper's number, its key.

    A cell is one seed's metric with its stored CI, or the mean over the row's seeds with a
    two-level CI (:func:`synreal.report.metrics.run_cell`).
    """
    from synreal.report.metrics import MAIN_METRICS, replicates, run_cell

    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    several = any(len(replicates(run)) > 1 for run in _runs(params).values())
    rows = []
    for run in _runs(params).values():
        row = _labels(run)
        if several:
            row["seeds"] = str(len(replicates(run)))
        for title, stage, key in metrics or MAIN_METRICS:
            row[title] = str(run_cell(run, stage, key, resamples, seed))
        if paper_title and "paper" in run:
            row[paper_title] = run["paper"]
        row["key"] = Path(run.get("finetune", run["pretrain"])).name
        rows.append(row)
    return rows


#: A metric's stage in :func:`_seed_figure`: the fine-tuned classifier's where a row has one.
FINETUNED = "finetune or probe"


def _seed_figure(params: dict, out_dir: Path, name: str, metrics=None) -> str | None:
    """``<name>_seeds.png`` beside the table: each seed's value and the mean with its CI.

    Written only when a row has several seeds; returns the file name (None otherwise).
    """
    from synreal.report.metrics import MAIN_METRICS, replicates, run_cell, seed_values
    from synreal.report.plots import plot_seeds

    runs = _runs(params)
    if all(len(replicates(run)) == 1 for run in runs.values()):
        return None
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    def read(run: dict, stage: str) -> str:  # the fine-tuned classifier where there is one
        return ("finetune" if "finetune" in run else "probe") if stage == FINETUNED else stage

    panels = {title: [(" / ".join(str(v) for v in _labels(run).values()),
                       seed_values(run, read(run, stage), key),
                       run_cell(run, read(run, stage), key, resamples, seed))
                      for run in runs.values()]
              for title, stage, key in metrics or MAIN_METRICS}
    path = Path(out_dir) / f"{name}_seeds.png"
    plot_seeds(panels, path, f"{name} ({params['study']}): each seed and the mean [95 % CI]")
    return f"results/tables/{path.name}"


def _top1(params: dict, stage: str = "probe") -> dict:
    """Linear top-1 of every row (mean over its seeds), as its table shows it."""
    from synreal.report.metrics import run_cell

    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    return {name: run_cell(run, stage, "top1", resamples, seed)
            for name, run in _runs(params).items()}


def _with_story(caption: str, story: str) -> str:
    return f"{caption} {story}"


def _main_controls(params: dict) -> dict:
    """The main table's controls as its Finding reads them: linear top-1 paired differences.

    real - random init, and the negative and positive controls - their reference; empty
    where the table's params carry no controls (a study without them).
    """
    from synreal.report.metrics import paired_difference

    controls, runs = params.get("controls") or {}, params.get("control_runs") or {}
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    pairs = {}
    if "random_init" in controls:
        pairs["random_init"] = (controls["random_init"], controls.get("trained", "real"))
    for part in ("negative", "positive"):
        if part in controls:
            pairs[part] = (controls["reference"], controls[part])
    return {part: paired_difference(runs[a], runs[b], "probe", "top1", resamples, seed)
            for part, (a, b) in pairs.items()}


def _read_controls_first(params: dict, finding: str) -> str:
    """A table's Finding after the main table's controls (unchanged without controls)."""
    from synreal.report import story

    return story.controls_first(finding, _main_controls(params))


def main_table(params: dict, out_dir: Path) -> None:
    """The study proposal: DINO on real vs synthetic data, frozen Pet evaluation, paired diff.

    With controls, their rows follow, and each control's paired difference from the control
    reference; the Finding reads the controls before the real-vs-synthetic difference.
    """
    from synreal.report import story
    from synreal.report.metrics import MAIN_METRICS, difference_label, differs, paired_difference

    runs = _runs(params)
    params = {**params, "figure": _seed_figure(params, out_dir, "main") or ""}
    rows = _run_rows(params)
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    controls = params.get("controls") or {}
    first = "pretraining data"

    def compare(a: str, b: str) -> tuple[list[dict], dict]:
        label_a, label_b = (runs[n]["labels"][first] for n in (a, b))
        label = difference_label(label_a, label_b)
        diff, verdict, cells = {first: f"{label} (paired)"}, {first: f"differ? ({label})"}, {}
        for title, stage, key in MAIN_METRICS:
            cell = paired_difference(runs[a], runs[b], stage, key, resamples, seed)
            cells[title] = cell
            diff[title], verdict[title] = str(cell), differs(cell)
        return [diff, verdict], cells

    extra, cells = compare("real", "synthetic")
    control_cells, negative_columns = {}, {}
    if "random_init" in controls:  # what pretraining added: real - the untrained backbone
        lines, found = compare(controls["random_init"], controls.get("trained", "real"))
        extra += lines
        control_cells["random_init"] = found["linear top-1"]
    for part in ("negative", "positive"):
        if part in controls:
            lines, found = compare(controls["reference"], controls[part])
            extra += lines
            control_cells[part] = found.pop("linear top-1")
            if part == "negative":
                negative_columns = found
    what = ("DINO pretrained on real vs synthetic images of equal number, classes and "
            "resolution; the last rows give each paired difference (B - A, seed i of B with "
            "seed i of A on the same test images) and whether its 95 % CI excludes 0.")
    if "random_init" in controls:
        what += (" Control 'random init': the real run's backbone at its random "
                 "initialisation, each seed's exactly as its DINO run starts, untrained "
                 "(real - random init: what pretraining added to the frozen features).")
    if "reference" in controls:
        what += (" Controls, on each half of the real run's training split (half A: the "
                 "control reference): the negative control pretrains on the held-out half B "
                 "(real data: it must show no difference); the positive control on half B "
                 "with every image replaced by class-independent colour noise (it must come "
                 "out worse).")
    caption = _caption(params, what)
    frame = pd.DataFrame([*rows, *extra]).fillna("")
    label = difference_label(runs["real"]["labels"][first], runs["synthetic"]["labels"][first])
    write_table(frame, out_dir, "main",
                _with_story(caption, story.main(cells, label, control_cells,
                                                negative_columns)))


def mix_ratio_table(params: dict, out_dir: Path) -> None:
    """Syn2Co Fig. 3: linear top-1, k-NN and mAP against the share of real images."""
    from synreal.report import story
    from synreal.report.metrics import MAIN_METRICS, run_cell
    from synreal.report.plots import plot_mix_ratio

    params = {**params, "figure": _seed_figure(params, out_dir, "mix_ratio") or ""}
    rows = _run_rows(params)
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    curves = {title: [(run["labels"]["real %"], run_cell(run, stage, key, resamples, seed))
                      for run in _runs(params).values()]
              for title, stage, key in MAIN_METRICS}
    plot_mix_ratio(curves, Path(out_dir) / "mix_ratio.png", params["study"])
    caption = _caption(params, "Share of real images in the pretraining set at equal total "
                               "(the rest synthetic), as Syn2Co Fig. 3; plot: "
                               "results/tables/mix_ratio.png.")
    note = f" Paper: {params['paper_source']}."
    write_table(pd.DataFrame(rows), out_dir, "mix_ratio",
                _with_story(caption + note, _read_controls_first(
                    params, story.mix_ratio(curves["linear top-1"]))))


def mixdiff_views_table(params: dict, out_dir: Path) -> None:
    """MixDiff Table 7: how DINO's crops are split between a real image and its variation."""
    from synreal.report import story

    params = {**params, "figure": _seed_figure(params, out_dir, "mixdiff_views") or ""}
    rows = _run_rows(params, paper_title="paper top-1")
    top1 = _top1(params)
    caption = _caption(params, "MixDiff view splits: each sample is a real image and its image "
                               "variation, the teacher's 2 global and the student's local crops "
                               "split as shown; real-only and synthetic-only rows use 2 global "
                               f"+ local crops of one image. Paper: {params['paper_source']}.")
    write_table(pd.DataFrame(rows), out_dir, "mixdiff_views",
                _with_story(caption, _read_controls_first(params, story.mixdiff(
                    top1, {name for name, _ in _collapsed_runs(params).values()}))))


def realtune_table(params: dict, out_dir: Path) -> None:
    """SynBench Table 10: DINO-{real, synthetic} x {vanilla, SynTune, RealTune}."""
    from synreal.report import story

    params = {**params, "figure": _seed_figure(params, out_dir, "realtune") or ""}
    rows = _run_rows(params, paper_title="paper top-1")
    top1 = _top1(params)
    tuned = next(run for run in _runs(params).values() if run["labels"]["tuning"] != "vanilla")
    summary = json.loads((Path(tuned["pretrain"]) / "summary.json").read_text())
    tune = read_spec(Path(tuned["pretrain"]))["params"]["dino"]
    steps = f"{summary['total_steps']} steps, " if "total_steps" in summary else ""
    caption = _caption(params, "RealTune / SynTune in self-supervised form: DINO continued "
                               f"from each pretrained model on {summary['n_images']} unlabeled "
                               "real (RealTune) or synthetic (SynTune) images for "
                               f"{tune['epochs']} epochs ({steps}batch {tune['batch_size']}, "
                               f"lr {tune['lr']}, {tune['warmup_epochs']} warm-up epochs, "
                               f"teacher momentum {tune['momentum_teacher']}), then evaluated "
                               f"frozen. Paper: {params['paper_source']}.")
    still = _still_share(params)
    if still is not None:
        caption += (f" WARNING: a tuned teacher kept {100 * still:.0f} % of its starting "
                    "weights (its EMA momentum schedule over the tuning's few steps; above "
                    f"{100 * STILL_SHARE:.0f} % a tuning barely tunes), so the tuned rows can "
                    "hardly differ from vanilla: lower realtune.ssl.dino.momentum_teacher or "
                    "add realtune.ssl.dino.epochs.")
    write_table(pd.DataFrame(rows), out_dir, "realtune",
                _with_story(caption, _read_controls_first(params, story.realtune(
                    top1, still, _realtune_differences(params)))))


def _realtune_differences(params: dict) -> dict[str, Cell]:
    """The paired differences the realtune Finding reads, as the main table pairs its rows.

    A tuned run continues its vanilla run's seed and every row is tested on the same images:
    RealTune - vanilla of the synthetic run, and RealTune - SynTune of each pretrained run.
    """
    from synreal.report.metrics import paired_difference

    runs = _runs(params)
    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]

    def differ(a: str, b: str) -> Cell:
        return paired_difference(runs[a], runs[b], "probe", "top1", resamples, seed)

    found = {}
    if {"synthetic/vanilla", "synthetic/RealTune"} <= set(runs):
        found["synthetic: RealTune - vanilla"] = differ("synthetic/vanilla",
                                                        "synthetic/RealTune")
    for run in ("real", "synthetic"):
        if {f"{run}/SynTune", f"{run}/RealTune"} <= set(runs):
            found[f"{run}: RealTune - SynTune"] = differ(f"{run}/SynTune", f"{run}/RealTune")
    return found


def _still_share(params: dict) -> float | None:
    """The largest share of its start a tuned teacher kept, when above STILL_SHARE; else None.

    Read from each tuned run's summary.json (every replicate seed); runs written before the
    share was recorded count as tuned.
    """
    from synreal.report.metrics import replicates

    shares = [json.loads((Path(r["pretrain"]) / "summary.json").read_text())
              .get("teacher_start_share", 0.0)
              for run in _runs(params).values() if run["labels"].get("tuning") != "vanilla"
              for r in replicates(run)]
    largest = max(shares, default=0.0)
    return largest if largest > STILL_SHARE else None


def pretrain_finetune_table(params: dict, out_dir: Path) -> None:
    """SynBench Table 3: pretraining data x supervised fine-tuning data."""
    from synreal.report import story
    from synreal.report.metrics import MAIN_METRICS, replicates, run_cell

    resamples, seed = params["facts"]["resamples"], params["facts"]["seed"]
    several = any(len(replicates(run)) > 1 for run in _runs(params).values())
    params = {**params, "figure": _seed_figure(params, out_dir, "pretrain_finetune", (
        ("test top-1", FINETUNED, "top1"),
        *((f"{title} (frozen)", stage, key) for title, stage, key in MAIN_METRICS[1:]))) or ""}
    rows, top1 = [], {}
    for name, run in _runs(params).items():
        # fine-tuned rows read the classifier's own test predictions, seed by seed
        stage = "finetune" if "finetune" in run else "probe"
        cell = run_cell(run, stage, "top1", resamples, seed)
        top1[name] = cell
        row = {**_labels(run), **({"seeds": str(len(replicates(run)))} if several else {}),
               "test top-1": str(cell)}
        for title, stage, key in MAIN_METRICS[1:]:
            row[f"{title} (frozen)"] = str(run_cell(run, stage, key, resamples, seed))
        row["paper top-1"] = run.get("paper", "—")
        row["key"] = Path(run.get("finetune", run["pretrain"])).name
        rows.append(row)
    finetuned = next(run for run in _runs(params).values() if "finetune" in run)
    protocol = json.loads((Path(finetuned["finetune"]) / "metrics.json").read_text())
    caption = _caption(params, "Pretraining data x fine-tuning data. Test top-1: the frozen "
                               "linear probe for 'none', else the fine-tuned classifier "
                               f"({protocol['protocol']}, {protocol['n_train']} images); the "
                               "other columns evaluate each resulting backbone frozen. "
                               f"{_label_budget(params)}Paper: {params['paper_source']}.")
    write_table(pd.DataFrame(rows), out_dir, "pretrain_finetune",
                _with_story(caption, _read_controls_first(params, story.pretrain_finetune(top1))))


def _same_run_as_main(params: dict) -> str:
    """Where the sweep's row is the main table's synthetic run, a caption says so."""
    scale = params.get("main_synthetic_scale")  # set by the plan only where the keys agree
    if scale is None:
        return ""
    return (f" The row at scale {float(scale):g} is the generator itself: its DINO run is the "
            "main table's synthetic run at its first seed (table main gives the mean over its "
            "seeds).")


def _label_budget(params: dict) -> str:
    """Whether the 'none' rows' probe and the fine-tuned rows learned from as many labels.

    SynBench Table 3 fine-tunes on the real images its real runs used; when the fine-tuning
    set is smaller than the probe's train split, 'none' against a fine-tuned row also compares
    label budgets, and the caption must say so.
    """
    runs = list(_runs(params).values())
    probed = next(run for run in runs if "finetune" not in run)
    probe = json.loads((Path(probed["probe"]) / "metrics.json").read_text())["n_train"]
    tuned = sorted({json.loads((Path(run["finetune"]) / "metrics.json").read_text())["n_train"]
                    for run in runs if "finetune" in run})
    if tuned == [probe]:
        return (f"The probe and every fine-tuning learn from as many labelled images "
                f"({probe}). ")
    subsets = {read_spec(Path(run["finetune"]))["params"]["tune"].get("per_class")
               for run in runs if "finetune" in run}
    fix = ("set realtune.supervised.params.per_class: 0 for the probe's" if subsets != {0} else
           "the synthetic fine-tuning set has another size than the probe's split")
    return (f"WARNING: the 'none' rows' probe learns from {probe} labelled images, the "
            f"fine-tuned rows from {', '.join(map(str, tuned))}: 'none' against a fine-tuned "
            f"row also compares label budgets ({fix}). ")


def cfg_table(params: dict, out_dir: Path) -> None:
    """Guidance sweep: audit measures and downstream metrics per CFG scale."""
    from synreal.report import story
    from synreal.report.metrics import MAIN_METRICS, read_metric

    rows, diversity, top1, summaries = [], {}, {}, []
    for scale, run in _runs(params).items():
        summary = json.loads((Path(run["audit"]) / "summary.json").read_text())
        summaries.append(summary)
        row = {"CFG scale": float(scale), **_audit_cells(Path(run["audit"]), summary)}
        diversity[float(scale)] = (summary.get("diversity") or {}).get(
            "mean_pairwise_cosine_distance")
        if "probe" in run:
            for title, stage, key in MAIN_METRICS:
                row[title] = str(read_metric(run[stage], key))
            top1[float(scale)] = read_metric(run["probe"], "top1")
        row["key"] = Path(run["generate"]).name
        if "pretrain" in run:
            row["DINO key"] = Path(run["pretrain"]).name
        rows.append(row)
    backends = sorted({read_spec(Path(run["generate"]))["params"].get("backend", "?")
                       for run in _runs(params).values()})
    built_in = (" The toy generator narrows its scale and brightness ranges and its label "
                "confusion as 7.5 / scale (synreal.generate.toy_guidance.guidance_factor): here "
                "lower diversity at stronger guidance is built in, a check that the audit "
                "measures it, not a finding." if any(b.startswith("toy") for b in backends)
                else "")
    caption = (f"Guidance-scale sweep of generator '{params['generator']}' (backend "
               f"{', '.join(backends)}) in study '{params['study']}', after SynBench F1 (SD "
               "text-to-image guidance 2-7: stronger guidance, less diversity) and MixDiff "
               "Figs. 6-7 (which sweep its image-variation model's guidance; Fig. 7: "
               "diversity and FID, Fig. 6: SimCLR top-1): SynBench measures of each "
               "scale's images against the real dataset and, where pretrained, DINO on them "
               "evaluated frozen (% with 95 % bootstrap CI). Key: the generated dataset; DINO "
               "key: the pretraining run."
               + _same_run_as_main(params) + built_in + _models_caption(summaries) + " "
               + _audit_caption(summaries, reference=False))
    pretrained = {scale: run for scale, run in _runs(params).items() if "probe" in run}
    if pretrained and "facts" in params:  # what made the DINO columns' numbers
        caption += " " + _caption({**params, "runs": pretrained, "order": list(pretrained)},
                                  "The DINO columns:")
    write_table(pd.DataFrame(rows), out_dir, "cfg",
                _with_story(caption, story.cfg(diversity, top1)))


#: Bootstrap resamples of the CIs computed here from per-image values (rates, medians).
AUDIT_CELL_RESAMPLES = 1000


def _audit_cells(artifact: Path, summary: dict, resamples: int = AUDIT_CELL_RESAMPLES,
                 seed: int = 0) -> dict:
    """SynBench measures of one audit, each with its 95 % bootstrap CI over images.

    Rates and medians are bootstrapped here from ``audit.parquet``; diversity and FID need
    the embeddings, so the audit stored their CIs in ``summary.json``.
    """
    from synreal.report.metrics import median_cell, rate_cell, stored_cell

    frame = pd.read_parquet(Path(artifact) / "audit.parquet")
    where = Path(artifact) / "summary.json"

    def rate(column: str, measured: bool) -> str:
        cell = rate_cell(frame[column], resamples, seed) if measured else None
        return "not measured" if cell is None else str(cell)

    def median(column: str, block: dict, digits: int) -> str:
        cell = median_cell(frame[column], resamples, seed)
        if cell is None:
            return "n/a"
        spread = (f" (IQR {block['q25']:.{digits}f}-{block['q75']:.{digits}f})"
                  if block.get("n") else "")
        return cell.plain(digits) + spread

    def stored(block: dict | None, key: str, digits: int) -> str:
        cell = stored_cell(block, key, str(where))
        return "n/a" if cell is None else cell.plain(digits)

    consistency = summary.get("consistency", {})
    return {
        "class consistency % [CI]": rate("consistent", consistency.get("rate") is not None),
        "object scale median [CI] (IQR)": median("scale_area_ratio", summary.get("scale", {}),
                                                 2),
        "brightness L* median [CI] (IQR)": median("brightness_lstar",
                                                  summary.get("brightness", {}), 1),
        "person blocking % [CI]": rate(
            "person_blocked", summary.get("person_blocking", {}).get("rate") is not None),
        "diversity [CI]": stored(summary.get("diversity"), "mean_pairwise_cosine_distance", 3),
        "FID [CI]": stored(summary.get("fid"), "fid", 2),
    }


def _reference_cell(artifact: Path, summary: dict, resamples: int = AUDIT_CELL_RESAMPLES,
                    seed: int = 0) -> str:
    """The real data's own consistency: % of its held-out images, with a bootstrap 95 % CI."""
    from synreal.errors import DataError
    from synreal.report.metrics import rate_cell

    if (summary.get("consistency") or {}).get("reference_rate") is None:
        return "not measured"
    # synreal.audit.run.REFERENCE_CONSISTENCY_FILE, named here so that the table rule does
    # not import the audit package (and its model dependencies)
    path = Path(artifact) / "reference_consistency.parquet"
    if not path.is_file():
        raise DataError(f"{path} is missing although {Path(artifact) / 'summary.json'} has a "
                        "reference rate: an older audit wrote it; delete that audit and rerun "
                        "snakemake to rebuild it.")
    consistent = pd.read_parquet(path, columns=["consistent"])["consistent"]
    cell = rate_cell(consistent, resamples, seed)
    # its size: a real set's own training images out of fold, or the few real images a
    # synthetic set's probe held out, so rows differ and the reader must see by how much
    return "not measured" if cell is None else f"{cell} (n {int(consistent.notna().sum())})"


def _vlm_blocking_cell(artifact: Path, summary: dict, resamples: int = AUDIT_CELL_RESAMPLES,
                       seed: int = 0) -> str:
    """The VLM-confirmed person-blocking rate, % of images with a verdict, with its CI.

    Bootstrapped like the overlap rule's cell from ``audit.parquet``'s ``person_vlm_blocked``
    (1 yes, 0 no or no person found, NaN unknown or not measured); "not measured" when the
    audit had no judge (no ``person_blocking.vlm`` block) or no image got a verdict.
    """
    from synreal.errors import DataError
    from synreal.report.metrics import rate_cell

    if ((summary.get("person_blocking") or {}).get("vlm") or {}).get("rate") is None:
        return "not measured"
    path = Path(artifact) / "audit.parquet"
    frame = pd.read_parquet(path)
    if "person_vlm_blocked" not in frame.columns:
        raise DataError(f"{path} has no person_vlm_blocked column although "
                        f"{Path(artifact) / 'summary.json'} has a VLM blocking rate: an older "
                        "audit wrote it; delete that audit and rerun snakemake to rebuild it.")
    cell = rate_cell(frame["person_vlm_blocked"], resamples, seed)
    return "not measured" if cell is None else str(cell)


def _vlm_caption(summaries: list[dict]) -> str:
    """What the VLM blocking column counts, naming the judges the audits asked."""
    judges = sorted({vlm["model_id"] for s in summaries
                     if (vlm := (s.get("person_blocking") or {}).get("vlm"))})
    asked = f" ({', '.join(judges)})" if judges else ""
    return (f" VLM person blocking: % of images the vision-language judge{asked} called "
            "person-blocked when asked SynBench's yes/no question about the images with a "
            "detected person (images without one count as not blocked, unknown answers are "
            "left out), with the same bootstrap CI; not measured where no judge was "
            "configured.")


def _audit_caption(summaries: list[dict], reference: bool) -> str:
    """How the audit cells' CIs were made, with the resample counts the audits used.

    ``reference``: the table has the real reference's consistency column.
    """
    def resamples(block: str) -> str | None:
        used = sorted({(s.get(block) or {}).get("resamples") for s in summaries} - {None})
        return "/".join(str(n) for n in used) or None

    rates = ("Class consistency, the real reference and person blocking: % of images (the "
             "real reference, n images: of the real images held out from the consistency "
             "probe; for a real set its training images out of fold, for a synthetic set the "
             "real images its probe held out, fewer, so its CI is wider)"
             if reference else "Class consistency and person blocking: % of images")
    text = ("Each audit measure is value [95 % bootstrap CI over images]. "
            f"{rates}; object scale (box area / image) and CIELAB L* brightness: median, then "
            f"the interquartile range; {AUDIT_CELL_RESAMPLES} resamples each.")
    if resamples("diversity"):
        text += (" Diversity (mean pairwise cosine distance; two draws of one image count as "
                 f"a pair at distance 0): {resamples('diversity')} resamples.")
    if resamples("fid"):
        text += (f" FID: {resamples('fid')} resamples of both sets; repeated images inflate "
                 "a resample's FID, so its interval is shifted by the bootstrap bias estimate "
                 "and gives the FID's spread between image samples of these sizes.")
    return text


#: summary["models"] key -> what the synbench caption calls it, in caption order.
AUDIT_MODEL_ROLES = (("embedding", "embedding (diversity, near-duplicates, test leaks)"),
                     ("consistency", "class-consistency classifier"),
                     ("consistency_clip", "CLIP zero-shot consistency"),
                     ("fid", "FID features"), ("object_scale", "object detector"),
                     ("person_boxes", "person boxes"), ("person_blocking", "person blocking"),
                     ("person_vlm", "person-blocking judge"))


def _models_caption(summaries: list[dict]) -> str:
    """Every model and protocol the audits used, from each summary's ``models`` block."""
    parts = []
    for key, role in AUDIT_MODEL_ROLES:
        used = sorted({str(m) for s in summaries
                       if (m := (s.get("models") or {}).get(key)) is not None})
        if used:
            parts.append(f"{role}: {' / '.join(used)}")
    if not parts:
        return " Models: not recorded (audits written before the audit named its models)."
    text = " Models: " + "; ".join(parts) + "."
    if any("colour-layout" in str((s.get("models") or {}).get("embedding", ""))
           for s in summaries):
        text += (" WARNING: colour-layout (an 8x8 thumbnail and a colour histogram) is a "
                 "demo-only, non-semantic embedding: unrelated photographs sit close in it, "
                 "so diversity, near-duplicates, test leaks and any FID on it do not measure "
                 "what SynBench's do.")
    uncovered = sorted({c for s in summaries for c in
                        (s.get("consistency") or {}).get("not_covered") or []})
    if uncovered:
        text += (f" The ImageNet classifier has no class for {', '.join(uncovered)}: those "
                 "images are left out of its consistency (CLIP's covers them).")
    return text


def _finite(value) -> bool:
    import math

    return isinstance(value, int | float) and math.isfinite(value)


def _threshold_cell(dups: dict) -> str:
    """The near-duplicate / leak threshold and, briefly, where it came from."""
    threshold = dups.get("threshold")
    if not _finite(threshold):
        return "n/a"
    how = "configured" if dups.get("source", "configured") == "configured" else "calibrated"
    return f"{threshold:.4f} ({how})"


def _duplicates_caption(summaries: list[dict]) -> str:
    """How each threshold was set, as the audits recorded it."""
    sources = sorted({f"{d['threshold']:.4f}: {d.get('source', 'configured')}"
                      for s in summaries if (d := s.get("near_duplicates") or {})
                      and _finite(d.get("threshold"))})
    text = (" Near-duplicate pairs (inside a set) and test leaks (images of the set that are "
            "a downstream test image's file or whose embedding cosine to one exceeds the "
            "threshold; rows that are themselves test images are not checked) use the "
            "threshold beside them")
    return text + (f" ({'; '.join(sources)})." if sources else ".")


def _clip_cell(artifact: Path, summary: dict, resamples: int = AUDIT_CELL_RESAMPLES,
               seed: int = 0) -> str:
    """CLIP zero-shot consistency beside the reference classifier's, with its CI."""
    from synreal.report.metrics import rate_cell

    if (summary.get("consistency_clip") or {}).get("rate") is None:
        return "not measured"
    frame = pd.read_parquet(Path(artifact) / "audit.parquet", columns=["clip_consistent"])
    cell = rate_cell(frame["clip_consistent"], resamples, seed)
    return "not measured" if cell is None else str(cell)


def _not_found_cell(summary: dict) -> str:
    """% of the readable images where the detector found no central object."""
    rate = (summary.get("scale") or {}).get("not_found_rate")
    return "n/a" if rate is None else f"{100 * rate:.1f}"


def synbench_table(params: dict, out_dir: Path) -> None:
    """SynBench measures per dataset: consistency, scale, brightness, person blocking, more."""
    rows, summaries = [], []
    audits = params["audits"]
    for name in params.get("order", audits):
        artifact = Path(audits[name])
        summary = json.loads((artifact / "summary.json").read_text())
        summaries.append(summary)
        dups = summary.get("near_duplicates", {})
        cells = _audit_cells(artifact, summary)
        rows.append({
            "dataset": name,
            "images": summary["n_images"],
            "class consistency % [CI]": cells.pop("class consistency % [CI]"),
            "CLIP consistency % [CI]": _clip_cell(artifact, summary),
            "real reference % [CI]": _reference_cell(artifact, summary),
            "object scale median [CI] (IQR)": cells.pop("object scale median [CI] (IQR)"),
            "object not found %": _not_found_cell(summary),
            "brightness L* median [CI] (IQR)": cells.pop("brightness L* median [CI] (IQR)"),
            "person blocking % [CI]": cells.pop("person blocking % [CI]"),
            "VLM person blocking % [CI]": _vlm_blocking_cell(artifact, summary),
            **cells,
            "near-dup pairs": dups.get("pairs_within", "n/a"),
            "test leaks": dups.get("leaks", dups.get("test_matches", 0)
                                   + dups.get("exact_test", 0)),
            "dup/leak threshold (cosine)": _threshold_cell(dups),
            "key": artifact.name,
        })
    caption = (f"SynBench audit of study '{params['study']}' (SynBench Sec. 3, Fig. 4-5): class "
               "consistency of each dataset's images with a reference classifier (beside it, "
               "CLIP zero-shot where measured, and the real data's own held-out consistency); "
               "object scale (central object's box / image) with the share of images where "
               "the detector found no central object (left out of the median, never dropped "
               "silently), and brightness; share of person-blocked objects (a person box over "
               "the object's box) and the share a vision-language judge confirms; mean "
               "pairwise cosine distance (MixDiff 5.3); FID to the real counterpart; "
               "near-duplicate pairs inside the set and leaks into the downstream test set (a "
               "leakage warning when > 0)."
               + _models_caption(summaries) + _duplicates_caption(summaries) + " "
               + _audit_caption(summaries, reference=True) + _vlm_caption(summaries)
               + _leak_warning(rows))
    write_table(pd.DataFrame(rows), out_dir, "synbench", caption)


def _leak_warning(rows: list[dict]) -> str:
    """The caption's promised warning: every set with a test leak, and how many."""
    leaking = [f"{row['dataset']} ({row['test leaks']})" for row in rows
               if isinstance(row["test leaks"], int | float) and row["test leaks"] > 0]
    if not leaking:
        return ""
    return (f" WARNING: test leaks in {', '.join(leaking)}: images within the threshold of a "
            "downstream test image (or its file), so a model pretrained, tuned or probed on "
            "that set may have seen test images; look at the pairs before trusting the "
            "downstream numbers (a weak embedding also flags look-alikes).")


BUILDERS: dict[str, Callable[[dict, Path], None]] = {
    "synbench": synbench_table,
    "datasets": datasets_table,
    "main": main_table,
    "mix_ratio": mix_ratio_table,
    "mixdiff_views": mixdiff_views_table,
    "realtune": realtune_table,
    "pretrain_finetune": pretrain_finetune_table,
    "cfg": cfg_table,
}
