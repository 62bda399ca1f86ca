"""Tables with replicate seeds and controls, written from hand-made evaluation artifacts."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from synreal.eval.bootstrap import paired_two_level_bootstrap_diff, two_level_bootstrap_ci
from synreal.report import builders, story

from ..workflow.test_tables import (
    check_written_differences,
    check_written_main_table,
    estimate_and_ci,
)

N_TEST = 120
FACTS = {"model": "vit_tiny", "epochs": 2, "recipe": ["out_dim 256"], "seed": 0,
         "eval_dataset": "pets",
         "n_train": "trainval", "n_test": "test", "protocol": "cls", "resamples": 500}


def _artifacts(root, name, seed, accuracy, rng):
    """A pretraining run's artifacts for one seed: per-item 0/1 outcomes at ``accuracy``."""
    ids = [f"img{i:04d}" for i in range(N_TEST)]
    correct = (rng.random(N_TEST) < accuracy).astype(float)
    ap = np.clip(correct * 0.8 + rng.random(N_TEST) * 0.2, 0, 1)
    ap[:3] = np.nan  # queries without a relevant item: NaN in every seed and run
    values = {"probe": {"top1": correct}, "knn": {"top1_k20": correct[::-1].copy()},
              "retrieval": {"map": ap, "recall_at_1": correct}}
    dirs = {"seed": seed}
    for stage, per_item in values.items():
        out = root / stage / f"{name}{seed}"
        out.mkdir(parents=True)
        pd.DataFrame({"id": ids, **per_item}).to_parquet(out / "per_item.parquet")
        metrics = {k: {"estimate": float(np.nanmean(v)), "lo": 0.0, "hi": 1.0}
                   for k, v in per_item.items()}
        (out / "metrics.json").write_text(json.dumps({**metrics, "n_train": 240,
                                                      "n_test": N_TEST}))
        dirs[stage] = str(out)
    pretrain = root / "pretrain" / f"{name}{seed}"
    pretrain.mkdir(parents=True)
    (pretrain / "summary.json").write_text(json.dumps({"n_images": 90, "total_steps": 20}))
    (pretrain / "spec.json").write_text(json.dumps({"params": {
        "data": {"source": "real"},
        "dino": {"epochs": 10, "local_crops_number": 2, "warmup_epochs": 0, "out_dim": 32}}}))
    dirs["pretrain"] = str(pretrain)
    return dirs


def _row(root, name, label, accuracies, rng):
    replicates = [_artifacts(root, name, seed, p, rng) for seed, p in enumerate(accuracies)]
    return {"labels": {"pretraining data": label},
            **{k: v for k, v in replicates[0].items() if k != "seed"},
            "replicates": replicates}


def _params(root, accuracy, seed=0):
    rng = np.random.default_rng(seed)
    labels = {"real": "real", "synthetic": "synthetic",
              "control_reference": "control: real half A",
              "control_negative": "negative control: real half B",
              "control_positive": "positive control: noise"}
    runs = {name: _row(root, name, labels[name], accuracy[name], rng) for name in labels}
    return {"study": "t", "runs": runs, "order": list(runs), "facts": FACTS,
            "controls": {"reference": "control_reference", "negative": "control_negative",
                         "positive": "control_positive"}}


GOOD = {"real": [0.6, 0.55], "synthetic": [0.45, 0.4], "control_reference": [0.6, 0.55],
        "control_negative": [0.6, 0.55], "control_positive": [0.1, 0.1]}


def test_main_table_reports_the_mean_over_seeds_with_two_level_cis_and_the_controls(tmp_path):
    params = _params(tmp_path, GOOD)
    builders.main_table(params, tmp_path / "tables")
    tables = tmp_path / "tables"
    check_written_main_table(tables)
    frame = pd.read_csv(tables / "main.csv", dtype=str).fillna("")
    assert list(frame["pretraining data"][:5]) == [
        "real", "synthetic", "control: real half A",
        "negative control: real half B",
        "positive control: noise"]
    assert set(frame["seeds"][:5]) == {"2"}
    assert check_written_differences(tables) == 12  # 3 differences x 4 metrics
    # the real row's cell is the two-level bootstrap of its seeds' per-item values
    per_seed = np.stack([pd.read_parquet(f"{r['probe']}/per_item.parquet")["top1"]
                         for r in params["runs"]["real"]["replicates"]])
    expected = two_level_bootstrap_ci(per_seed, n_resamples=500, seed=0)
    assert estimate_and_ci(frame["linear top-1"][0]) == pytest.approx(
        (round(100 * expected.estimate, 1), round(100 * expected.lo, 1),
         round(100 * expected.hi, 1)))
    # and the mean over seeds of each seed's own value

    seeds = [json.loads(Path(r["probe"], "metrics.json").read_text())["top1"]["estimate"]
             for r in params["runs"]["real"]["replicates"]]
    assert expected.estimate == pytest.approx(np.mean(seeds))
    # retrieval: the NaN queries are dropped from every seed and run alike
    synthetic = np.stack([pd.read_parquet(f"{r['probe']}/per_item.parquet")["top1"]
                          for r in params["runs"]["synthetic"]["replicates"]])
    paired = paired_two_level_bootstrap_diff(synthetic, per_seed, n_resamples=500, seed=0)
    row = frame.set_index("pretraining data").loc["synthetic - real (paired)", "linear top-1"]
    assert estimate_and_ci(row)[0] == pytest.approx(round(100 * paired.estimate, 1))
    caption = (tables / "main.md").read_text().splitlines()[0]
    assert "mean over 2 seeds" in caption and "CI over seeds and test images" in caption
    assert ("DINO 2 epochs on 90 images (settings unlike the official main_dino.py defaults: "
            "out_dim 256), seeds 0, 1") in caption, caption
    assert "positive control (class cues removed) is detected" in caption
    assert "negative control (held-out real) shows no difference" in caption
    assert (tables / "main_seeds.png").stat().st_size > 0


def test_the_caption_names_each_rows_pretraining_where_rows_differ(tmp_path):
    """Controls that train on half the images (fewer steps) and a row with other crops are
    named with their own numbers; the header then gives no image count of its own."""
    params = _params(tmp_path, GOOD)
    for name, run in params["runs"].items():
        run["data"] = f"data of {name}"
    for name in ("control_reference", "control_negative", "control_positive"):
        summary = Path(params["runs"][name]["pretrain"]) / "summary.json"
        summary.write_text(json.dumps({"n_images": 45, "total_steps": 10}))
    spec = Path(params["runs"]["synthetic"]["pretrain"]) / "spec.json"
    spec.write_text(json.dumps({"params": {"data": {"source": "mixdiff", "views": {
        "real_global": 1, "real_local": 6, "synthetic_global": 1, "synthetic_local": 2}},
        "dino": {"epochs": 10, "local_crops_number": 2}}}))
    builders.main_table(params, tmp_path / "tables")
    caption = (tmp_path / "tables" / "main.md").read_text().splitlines()[0]
    assert "DINO 2 epochs (settings unlike" in caption and "epochs on" not in caption
    assert ("Pretraining per row: 'real' = data of real: 90 images, 20 DINO steps, crops "
            "2 global + 2 local; 'synthetic' = data of synthetic: 90 images, 20 DINO steps, "
            "crops 2 global + 8 local; 'control: real half A' = data of control_reference: 45 "
            "images, 10 DINO steps, crops 2 global + 2 local;") in caption, caption


def _with_random_init(root, accuracy, untrained):
    params = _params(root, accuracy)
    row = _row(root, "control_random_init", "control: random init", untrained,
               np.random.default_rng(7))
    params["runs"]["control_random_init"] = row
    params["order"].append("control_random_init")
    params["controls"]["random_init"] = "control_random_init"
    return params


@pytest.mark.parametrize(("untrained", "adds"), [([0.1, 0.12], True), ([0.6, 0.55], False)])
def test_the_random_init_control_is_read_first_as_what_pretraining_added(
        tmp_path, untrained, adds):
    params = _with_random_init(tmp_path, GOOD, untrained)
    builders.main_table(params, tmp_path / "tables")
    tables = tmp_path / "tables"
    check_written_main_table(tables)
    frame = pd.read_csv(tables / "main.csv", dtype=str).fillna("")
    assert "control: random init" in list(frame["pretraining data"])
    assert "real - control: random init (paired)" in list(frame["pretraining data"])
    assert check_written_differences(tables) == 16  # 4 differences x 4 metrics
    caption = (tables / "main.md").read_text().splitlines()[0]
    assert "Control 'random init': the real run's backbone at its random initialisation" in caption
    finding = caption.split("Finding:")[1]
    assert finding.strip().startswith(
        "Controls first: in linear top-1, pretraining on the real images")
    if adds:
        assert "adds to the untrained backbone" in finding
        assert "not judged" not in finding  # GOOD: every control passes
    else:
        assert "is NOT shown to add" in finding and "the main comparison is not judged" in finding
        assert finding.endswith(story.CANNOT_TELL + ".")
        assert "The frozen features are not shown to depend on the pretraining" in finding


def test_an_undetected_positive_control_means_the_study_cannot_tell(tmp_path):
    accuracy = {**GOOD, "control_positive": GOOD["control_reference"]}
    builders.main_table(_params(tmp_path, accuracy), tmp_path / "tables")
    check_written_main_table(tmp_path / "tables")
    finding = (tmp_path / "tables" / "main.md").read_text().splitlines()[0].split("Finding:")[1]
    assert "NOT detected" in finding and finding.endswith(story.CANNOT_TELL + ".")


def test_a_negative_control_that_differs_is_said_and_blocks_the_verdict(tmp_path):
    accuracy = {**GOOD, "control_negative": [0.2, 0.25]}
    builders.main_table(_params(tmp_path, accuracy), tmp_path / "tables")
    check_written_main_table(tmp_path / "tables")
    finding = (tmp_path / "tables" / "main.md").read_text().splitlines()[0].split("Finding:")[1]
    assert "SHOWS A DIFFERENCE" in finding and finding.endswith(story.CANNOT_TELL + ".")


def test_the_written_table_check_catches_a_difference_with_the_wrong_sign(tmp_path):
    builders.main_table(_params(tmp_path, GOOD), tmp_path / "tables")
    path = tmp_path / "tables" / "main.csv"
    frame = pd.read_csv(path, dtype=str).fillna("")
    row = frame.index[frame["pretraining data"] == "synthetic - real (paired)"][0]
    diff, lo, hi = estimate_and_ci(frame.loc[row, "linear top-1"])
    frame.loc[row, "linear top-1"] = f"{-diff:.1f} [{-hi:.1f}, {-lo:.1f}]"
    frame.to_csv(path, index=False)
    with pytest.raises(AssertionError):
        check_written_differences(tmp_path / "tables")


def test_single_seed_rows_keep_their_stored_cis_and_no_seed_column(tmp_path):
    params = _params(tmp_path, {k: v[:1] for k, v in GOOD.items()})
    builders.main_table(params, tmp_path / "tables")
    frame = pd.read_csv(tmp_path / "tables" / "main.csv", dtype=str).fillna("")
    assert "seeds" not in frame.columns
    assert frame["linear top-1"][0].endswith("[0.0, 100.0]")  # the stored CI, as written
    assert not (tmp_path / "tables" / "main_seeds.png").exists()
    caption = (tmp_path / "tables" / "main.md").read_text().splitlines()[0]
    assert "seed 0;" in caption and "CI over test images" in caption


def test_a_collapsed_seed_is_named_with_its_seed(tmp_path):
    import math

    params = _params(tmp_path, GOOD)
    run_dir = Path(params["runs"]["control_positive"]["replicates"][1]["pretrain"])
    (run_dir / "spec.json").write_text(json.dumps({"params": {"dino": {
        "warmup_epochs": 0, "out_dim": 32}}}))
    records = [{"epoch": 0, "step": i, "loss": 1.0, "teacher_entropy": 0.95 * math.log(32),
                "kl_to_uniform": 0.01, "student_mi": 1.0, "teacher_mi": 1.0}
               for i in range(20)]
    (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    builders.main_table(params, tmp_path / "tables")
    caption = (tmp_path / "tables" / "main.md").read_text().splitlines()[0]
    # named by its row's label, as the reader sees it, not by the study's run name
    assert "WARNING: collapsed DINO run" in caption
    assert "positive control: noise seed 1 (" in caption and "control_positive" not in caption
    assert "real seed" not in caption


@pytest.mark.parametrize("tuned_labels", [24, 240])
def test_pretrain_finetune_reads_each_seeds_fine_tuned_classifier_and_draws_the_seeds(
        tmp_path, tuned_labels):
    rng = np.random.default_rng(3)
    rows = {}
    for name, seeds, tuned in (("real/none", 2, False), ("real/synthetic", 2, True),
                               ("synthetic/real", 2, True), ("mix/none", 1, False),
                               ("mix/real", 1, True)):
        pretraining, finetuning = name.split("/")
        row = _row(tmp_path, name.replace("/", "_"), "x", [0.5] * seeds, rng)
        row["labels"] = {"pretraining": pretraining, "fine-tuning": finetuning}
        row["label_columns"] = ["pretraining", "fine-tuning"]
        if tuned:
            for i, replicate in enumerate(row["replicates"]):
                out = tmp_path / "realtune" / f"{name.replace('/', '_')}{i}"
                out.mkdir(parents=True)
                correct = (rng.random(N_TEST) < 0.9).astype(float)  # far from the probe's 0.5
                pd.DataFrame({"id": [f"img{j:04d}" for j in range(N_TEST)],
                              "top1": correct}).to_parquet(out / "per_item.parquet")
                (out / "metrics.json").write_text(json.dumps({
                    "top1": {"estimate": correct.mean(), "lo": 0.0, "hi": 1.0},
                    "protocol": "supervised fine-tuning", "n_train": tuned_labels}))
                (out / "spec.json").write_text(json.dumps({"params": {"tune": {
                    "per_class": 0 if tuned_labels == 240 else 2}}}))
                replicate["finetune"] = str(out)
            row["finetune"] = row["replicates"][0]["finetune"]
        rows[name] = row
    params = {"study": "t", "runs": rows, "order": list(rows), "facts": FACTS,
              "paper_source": "SynBench Table 3"}
    params = json.loads(json.dumps(params, sort_keys=True))  # as the table job's spec sorts
    builders.pretrain_finetune_table(params, tmp_path / "tables")
    frame = pd.read_csv(tmp_path / "tables" / "pretrain_finetune.csv", dtype=str)
    assert list(frame.columns[:2]) == ["pretraining", "fine-tuning"]  # as the Finding reads
    tuned = frame.set_index(["pretraining", "fine-tuning"]).loc[("real", "synthetic")]
    assert tuned["seeds"] == "2" and estimate_and_ci(tuned["test top-1"])[0] > 80
    caption = (tmp_path / "tables" / "pretrain_finetune.md").read_text().splitlines()[0]
    assert "mean over 1-2 seeds" in caption
    assert "figure results/tables/pretrain_finetune_seeds.png" in caption
    # 'none' (the probe on 240 labelled images) against fine-tuned rows: equal label budgets,
    # or a warning naming both
    if tuned_labels == 240:
        assert "every fine-tuning learn from as many labelled images (240)" in caption
    else:
        assert ("WARNING: the 'none' rows' probe learns from 240 labelled images, the "
                "fine-tuned rows from 24: 'none' against a fine-tuned row also compares label "
                "budgets (set realtune.supervised.params.per_class: 0 for the probe's)") in caption
    assert (tmp_path / "tables" / "pretrain_finetune_seeds.png").stat().st_size > 0


@pytest.mark.parametrize("share", [0.44, 0.97])
def test_the_realtune_table_warns_when_a_tuned_teacher_barely_moved(tmp_path, share):
    """A tuned run's teacher_start_share above STILL_SHARE: the caption warns, naming the
    key to change, and the Finding does not judge; below it, neither."""
    rng = np.random.default_rng(0)
    rows = {}
    for run in ("real", "synthetic"):
        for tuning in ("vanilla", "SynTune", "RealTune"):
            name = f"{run}/{tuning}"
            row = _row(tmp_path, name.replace("/", "_"), run, [0.5, 0.45], rng)
            row["labels"] = {"pretrained on": run, "tuning": tuning}
            if tuning != "vanilla":
                for replicate in row["replicates"]:
                    summary = Path(replicate["pretrain"]) / "summary.json"
                    summary.write_text(json.dumps({"n_images": 36, "total_steps": 15,
                                                   "teacher_start_share": share}))
                    (summary.parent / "spec.json").write_text(json.dumps({"params": {"dino": {
                        "epochs": 5, "batch_size": 12, "lr": 0.005, "warmup_epochs": 0,
                        "momentum_teacher": 0.9}}}))
            rows[name] = row
    params = {"study": "t", "runs": rows, "order": list(rows), "facts": FACTS,
              "paper_source": "SynBench Table 10"}
    builders.realtune_table(params, tmp_path / "tables")
    caption = (tmp_path / "tables" / "realtune.md").read_text().splitlines()[0]
    assert ("on 36 unlabeled real (RealTune) or synthetic (SynTune) images for 5 epochs "
            "(15 steps, batch 12, lr 0.005, 0 warm-up epochs, teacher momentum 0.9)") in caption
    warned = "WARNING: a tuned teacher kept" in caption
    assert warned == (share > 0.5)
    assert ("lower realtune.ssl.dino.momentum_teacher" in caption) == warned
    assert ("Finding: RealTune and SynTune barely changed the backbones they tuned (a tuned "
            "teacher kept" in caption) == warned
    if warned:
        assert "kept 97 % of its starting weights" in caption
