"""The full study's rehearsal through Slurm, on the local cluster: all 8 tables.

README's Slurm command for the study (table_main), verbatim, through the local cluster's
profile (the production profile's 40 s status polling would make its jobs take an hour here;
test_slurm.py runs the production profile itself), in a fresh folder, with
``SYNREAL_REHEARSAL=1``; then the same command without a target: the whole study, every
table and figure. Every rule of the study goes through sbatch (generation, audits, the
controls, pretraining at 2 seeds, features, evaluation, RealTune, tables, figures): the
stages the study gives GPUs to the GPU partition with a GPU request (one of the cluster's
two fake GPUs), every other stage to the CPU partition with none. The study's GPU counts and
partitions stay as written; the rehearsal asks one CPU and at most 4 GB per job, which this
node can give. Slurm jobs start cold (warm starts are for local runs), each paying for the
two Snakemake processes the Slurm plugin starts per job, so this is the suite's longest test
(about 250 jobs): tests/conftest.py schedules it first.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from ..conftest import REPO, why_snakemake_failed
from .conftest import completed_jobs, run_on_slurm
from .test_slurm import SUBMITTED

pytestmark = pytest.mark.slow

STUDY = REPO / "config" / "studies" / "afhq_pets.yaml"


#: Seconds one of the two Snakemake runs may take (the second runs ~140 jobs).
RUN_TIMEOUT_S = 3000


def readme_slurm_command() -> list[str]:
    """README's Slurm command for the study, as arguments after ``snakemake --profile X``.

    (``--configfile`` takes every word after it, so README names the target before it.)
    """
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"(?m)^snakemake --profile workflow/profiles/slurm (.*"
                          r"--configfile config/studies/afhq_pets\.yaml.*)$", readme)
    assert commands, "README no longer gives the study's Slurm command"
    words = commands[0].split()
    return [str(STUDY) if word == "config/studies/afhq_pets.yaml" else word for word in words]


def test_readme_gives_the_studys_slurm_command_for_one_table():
    assert readme_slurm_command() == ["table_main", "--configfile", str(STUDY)]


def test_the_study_rehearsal_runs_on_slurm_with_its_gpu_routing(slurm_cluster, tmp_path):
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    folder = workdir / "rehearsal" / "afhq_pets"
    readme = readme_slurm_command()
    output = ""
    for args in (readme, readme[1:]):  # table_main, then the default target: everything
        result = run_on_slurm(workdir, *args, timeout=RUN_TIMEOUT_S,
                              env={"SYNREAL_REHEARSAL": "1"})
        assert result.returncode == 0, why_snakemake_failed(result, folder)
        output += result.stdout + result.stderr
    results = folder / "results"
    study = yaml.safe_load(STUDY.read_text())
    assert len(study["tables"]) == 8
    for name in study["tables"]:
        assert (results / "tables" / f"{name}.md").stat().st_size > 0, name
    assert any((results / "figures").iterdir())

    # "Job <n> has been submitted with SLURM jobid <id> (log: .../rule_<rule>/...)."
    rule_of = {slurm_id: re.search(r"rule_(\w+)", log).group(1)
               for _, slurm_id, log in SUBMITTED.findall(output)}
    assert len(rule_of) > 20, output[-3000:]
    records = completed_jobs(set(rule_of), wait_s=30)
    assert {r["JobState"] for r in records.values()} == {"COMPLETED"}
    gpu_stages = {stage for stage, r in study["resources"].items() if r.get("gpu")}
    assert gpu_stages == {"generate", "pretrain", "features", "probe_images", "audit", "realtune"}
    # the random-init control's pretrain jobs train nothing: the CPU partition, no GPU
    untrained = {spec.parent.name for spec in results.glob("pretrain/*/spec.json")
                 if json.loads(spec.read_text())["params"]["data"]["source"] == "random_init"}
    from synreal.rehearsal import rehearsal_config

    seeds = rehearsal_config(study)["replicates"]["seeds"]
    assert len(untrained) == seeds, untrained  # one per seed of the real run
    logs = {slurm_id: log for _, slurm_id, log in SUBMITTED.findall(output)}
    partitions = {}
    for slurm_id, rule in rule_of.items():
        if rule == "pretrain" and any(key in logs[slurm_id] for key in untrained):
            rule = "pretrain (random init)"
        partitions.setdefault(rule, set()).add(records[slurm_id]["Partition"])
    assert partitions["pretrain (random init)"] == {"cpu"}, partitions
    partitions.pop("pretrain (random init)")
    assert partitions == {rule: {"gpu" if rule in gpu_stages else "cpu"} for rule in partitions}
    assert set(partitions) >= gpu_stages | {"evaluate", "ingest", "control", "table"}, (
        partitions)
    # Slurm gave the GPU stages one (fake) GPU each and the others none: each job logs what
    # it saw (the job completion log records no GRES without slurmdbd)
    for log in (results / "logs").glob("*/*.log"):
        stage, text = log.parent.name, log.read_text()
        seen = re.search(r"CUDA_VISIBLE_DEVICES=(\S+)", text)
        if stage in gpu_stages and log.stem not in untrained:
            assert seen and seen.group(1) in {"0", "1"} and "SLURM_JOB_ID=" in text, (
                log, text[:500])
        elif "SLURM_JOB_ID=" in text:
            assert seen is None, (log, text[:500])
