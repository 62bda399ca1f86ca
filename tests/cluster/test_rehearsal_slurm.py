"""The full study's rehearsal through Slurm, on the local cluster.

README's Slurm commands for the study, through the local cluster's profile (the production
profile's 40 s status polling would make its jobs take an hour here; test_slurm.py runs the
production profile itself), in a fresh folder, with ``SYNREAL_REHEARSAL=1``. The whole-study
command first: every job of all 8 tables (generation, audits, the controls, pretraining at 2
seeds, features, evaluation, RealTune, tables) goes through sbatch, the stages the study
gives GPUs to the GPU partition with a GPU request (one of the cluster's two fake GPUs),
every other stage to the CPU partition with none. Then README's one-table command, which
finds everything done. The study's GPU counts and partitions stay as written; the rehearsal
asks one CPU and at most 4 GB per job, which this node can give.
"""

from __future__ import annotations

import re

import pytest
import yaml

from ..conftest import REPO, why_snakemake_failed
from .conftest import completed_jobs, run_on_slurm
from .test_slurm import SUBMITTED

pytestmark = pytest.mark.slow

STUDY = REPO / "config" / "studies" / "afhq_pets.yaml"


def readme_slurm_commands() -> list[list[str]]:
    """README's Slurm commands for the study, as arguments after ``snakemake --profile X``.

    (``--configfile`` takes every word after it, so README names a target before it.)
    """
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"(?m)^`?snakemake --profile workflow/profiles/slurm (.*"
                          r"--configfile config/studies/afhq_pets\.yaml[^`\n]*)`?\.?$", readme)
    assert commands, "README no longer gives the study's Slurm command"
    return [[str(STUDY) if word == "config/studies/afhq_pets.yaml" else word
             for word in command.split()] for command in commands]


def test_readme_gives_the_whole_study_and_one_table_on_slurm():
    commands = readme_slurm_commands()
    assert commands[0] == ["--configfile", str(STUDY)], commands
    assert ["table_main", "--configfile", str(STUDY)] in commands, commands


def test_the_study_rehearsal_runs_on_slurm_with_its_gpu_routing(slurm_cluster, tmp_path):
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    whole_study, *one_table = readme_slurm_commands()
    folder = workdir / "rehearsal" / "afhq_pets"
    result = run_on_slurm(workdir, *whole_study, timeout=2400, env={"SYNREAL_REHEARSAL": "1"})
    assert result.returncode == 0, why_snakemake_failed(result, folder)
    results = folder / "results"
    study = yaml.safe_load(STUDY.read_text())
    assert len(study["tables"]) == 8
    for name in study["tables"]:
        assert (results / "tables" / f"{name}.md").stat().st_size > 0, name
    for args in one_table:  # README's one-table command: everything is done already
        again = run_on_slurm(workdir, *args, timeout=300, env={"SYNREAL_REHEARSAL": "1"})
        assert again.returncode == 0, why_snakemake_failed(again, folder)
        assert "Nothing to be done" in again.stdout + again.stderr, args

    output = result.stdout + result.stderr
    # "Job <n> has been submitted with SLURM jobid <id> (log: .../rule_<rule>/...)."
    rule_of = {slurm_id: re.search(r"rule_(\w+)", log).group(1)
               for _, slurm_id, log in SUBMITTED.findall(output)}
    assert len(rule_of) > 20, output[-3000:]
    records = completed_jobs(set(rule_of), wait_s=30)
    assert {r["JobState"] for r in records.values()} == {"COMPLETED"}
    gpu_stages = {stage for stage, r in study["resources"].items() if r.get("gpu")}
    assert gpu_stages == {"generate", "pretrain", "features", "audit", "realtune"}
    partitions = {}
    for slurm_id, rule in rule_of.items():
        partitions.setdefault(rule, set()).add(records[slurm_id]["Partition"])
    assert partitions == {rule: {"gpu" if rule in gpu_stages else "cpu"} for rule in partitions}
    assert set(partitions) >= gpu_stages | {"evaluate", "ingest", "control", "table",
                                            "figures"}, partitions
    # Slurm gave the GPU stages one (fake) GPU each and the others none: each job logs what
    # it saw (the job completion log records no GRES without slurmdbd)
    for log in (results / "logs").glob("*/*.log"):
        stage, text = log.parent.name, log.read_text()
        seen = re.search(r"CUDA_VISIBLE_DEVICES=(\S+)", text)
        if stage in gpu_stages:
            assert seen and seen.group(1) in {"0", "1"} and "SLURM_JOB_ID=" in text, (
                log, text[:500])
        elif "SLURM_JOB_ID=" in text:
            assert seen is None, (log, text[:500])
