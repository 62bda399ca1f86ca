"""The full study's rehearsal, run as README gives it: every table and the report, on a CPU.

README's commands that run a study are run verbatim, in this checkout: first the rehearsal
itself, then every other one with ``SYNREAL_REHEARSAL=1`` in the environment (which makes
a command its rehearsal and changes nothing else), so each finds the rehearsal's artifacts
and has nothing left to do. The Slurm ones run in tests/cluster.
"""

import json
import os
import re
import shlex
import subprocess
import time

import pandas as pd
import pytest

from ..conftest import REPO, snakemake_env, why_snakemake_failed

pytestmark = pytest.mark.slow

FOLDER = REPO / "rehearsal" / "afhq_pets"
TABLES = ["datasets", "main", "synbench", "mix_ratio", "mixdiff_views", "realtune",
          "pretrain_finetune", "cfg"]


def readme_study_commands() -> list[str]:
    """Every `snakemake ... config/studies/...` command README gives (fenced or inline)."""
    text = (REPO / "README.md").read_text()
    found = re.findall(r"(?m)^(snakemake [^\n`]*config/studies/[^\n`]*)$", text)
    found += re.findall(r"`(?:[^`]*&& )?(?:PATH=\S+ )?(snakemake [^`]*config/studies/[^`]*)`",
                        text)
    return list(dict.fromkeys(command.strip() for command in found))


def run(command: str, rehearse: bool = False, timeout: int = 3600):
    env = snakemake_env()
    if rehearse:
        env["SYNREAL_REHEARSAL"] = "1"
    start = time.perf_counter()
    proc = subprocess.run(shlex.split(command), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    return proc, time.perf_counter() - start


@pytest.fixture(scope="module")
def rehearsed():
    """README's rehearsal command, verbatim, then its report."""
    commands = [c for c in readme_study_commands() if "rehearsal=true" in c]
    assert commands == ["snakemake --configfile config/studies/afhq_pets.yaml "
                        "--config rehearsal=true --cores all"]
    proc, seconds = run(commands[0])
    assert proc.returncode == 0, why_snakemake_failed(proc, FOLDER)
    report, _ = run(commands[0] + " --report results/report.html")
    assert report.returncode == 0, why_snakemake_failed(report, FOLDER)
    print(f"rehearsal of config/studies/afhq_pets.yaml: {seconds:.0f} s")
    return proc


def test_the_rehearsal_prints_what_it_changed(rehearsed):
    assert "synreal rehearsal: runs the study on the CPU" in rehearsed.stderr
    assert "  pretrain.params.epochs: 100 -> 1" in rehearsed.stderr


def test_the_rehearsal_writes_every_table_and_the_report(rehearsed):
    for name in TABLES:
        for ext in ("md", "csv", "tex"):
            assert (FOLDER / "results" / "tables" / f"{name}.{ext}").stat().st_size > 0, name
    report = FOLDER / "results" / "report.html"
    assert report.stat().st_size > 100_000


def test_the_rehearsals_main_table_differences_equal_their_cells(rehearsed):
    from .test_tables import check_tables_read_the_controls_first, check_written_main_table

    check_written_main_table(FOLDER / "results" / "tables")
    # the study's tables that compare pretraining read its controls first
    assert check_tables_read_the_controls_first(FOLDER / "results" / "tables") == 4


def test_the_main_caption_names_each_columns_protocol(rehearsed):
    caption = (FOLDER / "results" / "tables" / "main.md").read_text().splitlines()[0]
    # the study's probe is DINO's eval_linear.py with its augmentation (train_on: images)
    assert "Linear top-1: linear probe dino_linear: DINO eval_linear on images" in caption
    assert "RandomResizedCrop + horizontal flip, drawn afresh each epoch" in caption
    assert "1 epochs cosine to 0" in caption  # the rehearsal's one epoch, said
    assert "CLS tokens of the last 4 blocks concatenated (1536-d)" in caption
    assert "k-NN: DINO weighted k-NN (eval_knn)" in caption
    assert "last-block CLS token (384-d)" in caption
    assert "Retrieval: retrieval by cosine similarity" in caption
    # the study's own departures from DINO's recipe, and the rehearsal's shortened schedule
    # (rows train on different numbers of images, the controls on half: each row says its own)
    assert re.search(r"DINO 1 epochs \(settings unlike the official main_dino"
                     r"\.py defaults: batch_size 2, warmup_epochs 0, freeze_last_layer 0, "
                     r"norm_last_layer False, momentum_teacher 0\.978\)", caption), caption
    assert re.search(r"Pretraining per row: 'real' = afhq \(real\): \d+ images, \d+ DINO steps; "
                     r"'synthetic' = afhq_syn \(generator sdxl, guidance 2, \d+ sampling steps\)",
                     caption), caption
    assert "'control: random init': untrained." in caption


def test_the_rehearsals_one_step_realtune_is_flagged_as_barely_tuned(rehearsed):
    """The rehearsal tunes for one step, so its tuned teachers keep 99 % of their start: the
    realtune table says so and does not judge (the full study's 660 steps keep ~4 %)."""
    caption = (FOLDER / "results" / "tables" / "realtune.md").read_text().splitlines()[0]
    assert "WARNING: a tuned teacher kept 99 % of its starting weights" in caption, caption
    assert "RealTune and SynTune barely changed the backbones they tuned" in caption, caption
    assert caption.endswith("the table is not judged: the study cannot tell at this scale."), (
        caption)


def test_the_rehearsal_trained_the_studys_architecture(rehearsed):
    main = (FOLDER / "results" / "tables" / "main.md").read_text()
    assert "vit_small_patch16_224" in main.splitlines()[0]
    specs = [json.loads(p.read_text())
             for p in (FOLDER / "results" / "pretrain").glob("*/spec.json")]
    assert specs and all(s["params"]["dino"]["out_dim"] == 65536 for s in specs)
    assert all(s["params"]["dino"]["global_crop_size"] == 224 for s in specs)
    assert all(s["params"]["dino"]["local_crop_size"] == 96 for s in specs)
    datasets = pd.read_csv(FOLDER / "results" / "tables" / "datasets.csv")
    assert (datasets["dataset"] == "pets").any()


def test_every_readme_study_command_runs_verbatim(rehearsed):
    local = [c for c in readme_study_commands()
             if "rehearsal=true" not in c and "--profile workflow/profiles/slurm" not in c]
    assert len(local) >= 2, local  # the whole study and one table
    for command in local:
        proc, seconds = run(command, rehearse=True, timeout=600)
        assert proc.returncode == 0, (command, why_snakemake_failed(proc, FOLDER))
        assert "Nothing to be done" in proc.stdout + proc.stderr, command
        assert seconds < 120, (command, seconds)


def test_readme_commands_are_found():
    commands = readme_study_commands()
    assert any(c.endswith("--cores all table_main") for c in commands)
    assert any("--profile workflow/profiles/slurm" in c for c in commands)
    assert not any(os.sep + "work" in c for c in commands)
