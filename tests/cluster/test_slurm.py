"""The workflow on a real Slurm cluster: every job goes through sbatch, GPUs through GRES.

Needs the local cluster of scripts/slurm-local.sh (see conftest.py and README.md here).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ..conftest import MICRO_CONFIG, REPO, snakemake_env
from .conftest import (
    JOBCOMP_LOG,
    completed_jobs,
    finish,
    job_gres,
    run_on_slurm,
    scontrol_job,
    start_on_slurm,
)

pytestmark = pytest.mark.slow

GPU_SNAKEFILE = Path(__file__).with_name("gpu.smk")
UNSATISFIABLE = "Requested node configuration is not available"  # sbatch's own words
# The CPU-only part of the micro DAG (toyworld, ingest, generate, one table): 7 jobs. The
# pretraining jobs are exercised by test_preemption.py.
TARGET = "table_datasets"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.")


def slurm_jobs_by_rule(workdir: Path) -> dict[tuple[str, str], list[str]]:
    """``(rule, wildcards) -> Slurm job ids``, read from the plugin's per-job log files."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for log in sorted((workdir / "results" / "slurm_logs").glob("rule_*/**/*.log")):
        rule_dir = log.relative_to(workdir / "results" / "slurm_logs").parts[0]
        wildcards = log.parent.name if log.parent.name != rule_dir else ""
        jobs.setdefault((rule_dir.removeprefix("rule_"), wildcards), []).append(log.stem)
    return jobs


def expected_jobs(local_workdir: Path) -> set[tuple[str, str]]:
    """``(rule, wildcards)`` of every job with a shell command that the local run executed."""
    results = local_workdir / "results"
    jobs = {(stage, spec.parent.name) for stage in ("toyworld", "ingest", "generate")
            for spec in (results / stage).glob("*/spec.json")}
    jobs |= {("table", csv.stem) for csv in (results / "tables").glob("*.csv")}
    return jobs


def manifests(workdir: Path) -> dict[str, pd.DataFrame]:
    """Every ingest and generate manifest, with absolute paths made relative to ``workdir``."""
    frames = {}
    for path in sorted(workdir.glob("results/*/*/manifest.parquet")):
        frame = pd.read_parquet(path)
        if "path" in frame:
            frame["path"] = frame["path"].str.replace(f"{workdir}/", "", regex=False)
        frames[str(path.relative_to(workdir))] = frame
    return frames


@pytest.fixture(scope="module")
def micro_runs(slurm_cluster, tmp_path_factory):
    """The micro study run locally and on Slurm, side by side: (local dir, slurm dir, proc)."""
    local_dir = tmp_path_factory.mktemp("micro_local")
    slurm_dir = tmp_path_factory.mktemp("micro_slurm")
    snakemake = str(Path(sys.executable).parent / "snakemake")
    local = subprocess.Popen(  # runs while the Slurm jobs wait in the queue
        ["timeout", "-k", "10", "300", snakemake, "-s", str(REPO / "Snakefile"),
         "--directory", str(local_dir), TARGET, "--cores", "2", "--configfile",
         str(MICRO_CONFIG)],
        cwd=local_dir, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    start = time.perf_counter()
    slurm = run_on_slurm(slurm_dir, TARGET, "--configfile", str(MICRO_CONFIG))
    slurm_s = time.perf_counter() - start
    local_output, _ = local.communicate()
    assert local.returncode == 0, local_output[-3000:]
    assert slurm.returncode == 0, (slurm.stdout + slurm.stderr)[-5000:]
    print(f"micro study on Slurm: {slurm_s:.0f} s")
    return local_dir, slurm_dir, slurm


def test_every_micro_job_ran_as_a_slurm_job(micro_runs):
    local_dir, slurm_dir, proc = micro_runs
    output = proc.stdout + proc.stderr
    by_rule = slurm_jobs_by_rule(slurm_dir)
    assert set(by_rule) == expected_jobs(local_dir)
    assert all(len(ids) == 1 for ids in by_rule.values()), by_rule
    submitted = {slurm_id for _, slurm_id, _ in SUBMITTED.findall(output)}
    job_ids = {ids[0] for ids in by_rule.values()}
    assert submitted == job_ids
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    records = completed_jobs(job_ids)
    assert set(records) == job_ids, "every job must be in Slurm's job completion log"
    for record in records.values():
        assert record["JobState"] == "COMPLETED", record
        assert record["Name"] == run_id, record
        assert Path(record["WorkDir"]).resolve() == slurm_dir.resolve(), record
        assert record["Account"] == "synreal-ci", record
        assert record["Partition"] == "cpu", record


def test_cpu_requests_reach_slurm(micro_runs):
    _, slurm_dir, _ = micro_runs
    by_rule = slurm_jobs_by_rule(slurm_dir)
    records = completed_jobs({ids[0] for ids in by_rule.values()})
    for (rule, _), (job_id,) in by_rule.items():
        tres = records[job_id]["Tres"]
        if rule == "ingest":  # threads: 2, mem_mb: 4000 in workflow/rules/ingest.smk
            assert "cpu=2" in tres and "mem=4000M" in tres, tres
        assert job_gres(job_id) == "(null)", f"{rule} asked for no GPU"


def test_micro_outputs_equal_a_local_run(micro_runs):
    local_dir, slurm_dir, _ = micro_runs
    table = Path("results") / "tables" / "datasets.csv"
    pd.testing.assert_frame_equal(pd.read_csv(slurm_dir / table), pd.read_csv(local_dir / table))
    local, slurm = manifests(local_dir), manifests(slurm_dir)
    assert any(name.startswith("results/ingest/") for name in local)
    assert set(slurm) == set(local)
    for name, frame in local.items():
        pd.testing.assert_frame_equal(slurm[name], frame, obj=name)


def test_gpu_job_is_scheduled_with_cuda_visible_devices(slurm_cluster, tmp_path):
    proc = run_on_slurm(tmp_path, "gpu/visible.txt", "gpu/cpu_only.txt", snakefile=GPU_SNAKEFILE)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    gpu = dict(line.split("=", 1) for line in (tmp_path / "gpu/visible.txt").read_text().split())
    cpu = dict(line.split("=", 1) for line in (tmp_path / "gpu/cpu_only.txt").read_text().split())
    assert gpu["CUDA_VISIBLE_DEVICES"] in {"0", "1"}, gpu  # one of the node's two fake GPUs
    assert cpu["CUDA_VISIBLE_DEVICES"] == "unset", "a job without a GPU request got a GPU"
    records = completed_jobs({gpu["SLURM_JOB_ID"], cpu["SLURM_JOB_ID"]})
    assert all(r["JobState"] == "COMPLETED" for r in records.values()), records
    assert job_gres(gpu["SLURM_JOB_ID"]) == "gpu:testgpu:1"
    assert job_gres(cpu["SLURM_JOB_ID"]) == "(null)"


@pytest.mark.parametrize("target", ["gpu/too_many.txt", "gpu/unknown_model.txt"])
def test_unsatisfiable_gpu_request_fails_fast_with_slurms_message(slurm_cluster, tmp_path,
                                                                   target):
    start = time.perf_counter()
    proc = run_on_slurm(tmp_path, target, snakefile=GPU_SNAKEFILE, timeout=120)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0
    assert elapsed < 60, f"a rejected submission took {elapsed:.0f} s to report"
    output = proc.stdout + proc.stderr
    assert "SLURM sbatch failed" in output and UNSATISFIABLE in output, output[-3000:]
    (log,) = (tmp_path / ".snakemake" / "log").glob("*.snakemake.log")
    assert UNSATISFIABLE in log.read_text()
    assert not (tmp_path / target).exists()


# ---------------------------------------------------------------- pre-emption

PREEMPTION_CONFIG = Path(__file__).with_name("preemption.yaml")


def pretrain_dir(configs: list[Path]) -> Path:
    """``results/pretrain/<key>`` of the micro study's "real" run under ``configs``."""
    from snakemake.utils import update_config

    from synreal.config import validate_config
    from synreal.plan import build_plan

    config: dict = {}
    for path in configs:  # merged as snakemake merges several --configfile
        update_config(config, yaml.safe_load(path.read_text()))
    return Path(build_plan(validate_config(config)).pretrain["real"].out_dir)


def wait_for(condition, what: str, timeout: float, proc: subprocess.Popen):
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"snakemake ended (exit {proc.returncode}) before {what}:\n"
                        f"{(out + err)[-3000:]}")
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"no {what} within {timeout:.0f} s")


def assert_resumed_and_finished(workdir: Path, artifact: Path) -> None:
    """The last run of ``artifact``'s pretraining resumed mid-way and finished it.

    Its log names the checkpoint it resumed from, the artifact is complete, and every step
    appears exactly once in the training log across the runs.
    """
    rule_log = (workdir / "results" / "logs" / "pretrain" / f"{artifact.name}.log").read_text()
    resumed = re.search(r"resuming from \S+ \(step (\d+) of (\d+)\)", rule_log)
    assert resumed, rule_log[-3000:]
    start, total = map(int, resumed.groups())
    assert 0 < start < total
    summary = json.loads((artifact / "summary.json").read_text())
    assert summary["complete"] and summary["steps_done"] == total
    steps = [json.loads(line)["step"] for line in
             (artifact / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(total)), "each step logged exactly once across the runs"


def test_preempted_pretraining_is_requeued_and_resumes(micro_runs):
    """A pretraining job pre-empted by Slurm checkpoints, is requeued, and resumes.

    The "urgent" partition of the local cluster pre-empts the pretrain job's partition
    (PreemptMode=REQUEUE): Slurm sends SIGTERM to every process of the job, the training
    loop saves a checkpoint and exits 75, and Slurm puts the job (submitted with --requeue
    by the profile) back in the queue; its rerun resumes from the checkpoint.
    """
    _, workdir, _ = micro_runs  # reuse its toyworld and ingest outputs
    configs = [MICRO_CONFIG, PREEMPTION_CONFIG]
    target = pretrain_dir(configs)
    artifact = workdir / target
    checkpoints = artifact.with_name(f".{artifact.name}.partial") / "checkpoints"
    proc = start_on_slurm(workdir, str(target), "--configfile",
                          *map(str, configs))
    wait_for(lambda: list(checkpoints.glob("state-*.json")), "first checkpoint", 180, proc)
    (job_id,) = slurm_jobs_by_rule(workdir)[("pretrain", artifact.name)]
    urgent = subprocess.run(["sbatch", "--parsable", "--partition=urgent", "--exclusive",
                             "--output=/dev/null", "--wrap=sleep 1"], capture_output=True,
                            text=True, check=True, cwd=workdir).stdout.strip()
    # Slurm holds a requeued job for about two minutes (Reason=BeginTime); release it at once.
    wait_for(lambda: re.search(r"JobState=PENDING Reason=BeginTime", scontrol_job(job_id)),
             "requeued job", 60, proc)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    wait_for(lambda: "Reason=BeginTime" not in scontrol_job(job_id), "release", 30, proc)
    result = finish(proc)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    records = completed_jobs({job_id, urgent})
    assert records[urgent]["JobState"] == "COMPLETED", records
    job = scontrol_job(job_id)
    assert "JobState=COMPLETED" in job and "Restarts=1" in job, job
    states = [line.split("JobState=")[1].split()[0] for line in JOBCOMP_LOG.read_text()
              .splitlines() if f"JobId={job_id} " in line]
    assert states == ["PREEMPTED", "COMPLETED"], states
    # one Slurm job, two runs: the first was cut short, the second resumed and finished
    assert_resumed_and_finished(workdir, artifact)


TIMELIMIT_CONFIG = Path(__file__).with_name("timelimit.yaml")


def test_pretraining_near_its_time_limit_requeues_itself_and_resumes(micro_runs):
    """A pretraining job about to reach its time limit checkpoints and comes back.

    The training loop reads the job's time left from Slurm (and again every few seconds
    here), so when an admin lowers the limit under the running job, the next step sees it:
    it saves a checkpoint, exits 75 and requeues its own job (``scontrol requeue``, allowed
    by the profile's --requeue) before Slurm's SIGTERM. The job returns under the same id,
    Snakemake keeps waiting on it, and its rerun resumes from the checkpoint. The run is
    stretched to about 100 s (4 s per step), so the two-minute limit set a few steps in
    would cut it.
    """
    _, workdir, _ = micro_runs  # reuse its toyworld and ingest outputs
    configs = [MICRO_CONFIG, TIMELIMIT_CONFIG]
    target = pretrain_dir(configs)
    artifact = workdir / target
    checkpoints = artifact.with_name(f".{artifact.name}.partial") / "checkpoints"
    proc = start_on_slurm(workdir, str(target), "--configfile", *map(str, configs),
                          "--retries", "0",
                          env={"SYNREAL_SLOW": "train.step:4",
                               "SYNREAL_TIME_LIMIT_REFRESH_S": "2",
                               "SYNREAL_TIME_LIMIT_MARGIN_S": "100"},
                          timeout=420)
    wait_for(lambda: list(checkpoints.glob("state-*.json")), "first checkpoint", 180, proc)
    (job_id,) = slurm_jobs_by_rule(workdir)[("pretrain", artifact.name)]
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=2"], check=True)
    # Slurm holds a requeued job for about two minutes (Reason=BeginTime); release it at
    # once, with its own limit back so that the rerun can finish
    wait_for(lambda: re.search(r"JobState=PENDING Reason=BeginTime", scontrol_job(job_id)),
             "requeued job", 120, proc)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=10",
                    "StartTime=now"], check=True)
    result = finish(proc, timeout=420)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    assert slurm_jobs_by_rule(workdir)[("pretrain", artifact.name)] == [job_id]
    job = scontrol_job(job_id)
    assert "JobState=COMPLETED" in job and "Restarts=1" in job, job
    # Slurm never requeues a TIMEOUT: a requeued, completed job under one id is the
    # self-requeue (the rule log holds only the rerun: `> {log}` truncates it)
    assert_resumed_and_finished(workdir, artifact)


# ------------------------------------------------ the production profile, as documented

def documented_profile(folder: Path) -> Path:
    """workflow/profiles/slurm with only the edits docs/cluster.md tells a user to make.

    The local cluster's partitions are called ``cpu`` and ``gpu`` like the profile's
    defaults, any account name is accepted without slurmdbd, and without slurmdbd the
    documented edit is to uncomment ``slurm-status-command: squeue``.
    """
    text = (REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    edited = text.replace("# slurm-status-command: squeue", "slurm-status-command: squeue")
    assert edited != text, "the profile no longer has the commented squeue line the docs name"
    guide = (REPO / "docs" / "cluster.md").read_text()
    assert "`slurm-status-command: squeue` (uncomment)" in guide
    profile = folder / "slurm"
    profile.mkdir()
    (profile / "config.yaml").write_text(edited)
    return profile


def test_the_documented_command_runs_with_the_production_profile(slurm_cluster, tmp_path):
    readme = (REPO / "README.md").read_text()
    assert "snakemake --profile workflow/profiles/slurm " in readme
    profile = documented_profile(tmp_path)
    workdir = tmp_path / "study"
    workdir.mkdir()
    result = run_on_slurm(workdir, TARGET, "--configfile", str(MICRO_CONFIG), profile=profile,
                          timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert (workdir / "results" / "tables" / "datasets.md").stat().st_size > 0
    output = result.stdout + result.stderr
    job_ids = {slurm_id for _, slurm_id, _ in SUBMITTED.findall(output)}
    assert len(job_ids) == 7, output[-3000:]  # toyworld, ingest and generate x 2, the table
    records = completed_jobs(job_ids)
    assert {r["JobState"] for r in records.values()} == {"COMPLETED"}, records
    assert {r["Account"] for r in records.values()} == {"my_account"}
    # the micro study asks no GPU: every job goes to the study's CPU partition
    assert {r["Partition"] for r in records.values()} == {"cpu"}
