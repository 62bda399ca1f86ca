"""A job's thread budget (synreal.cpus) and the ingest stage's share of it."""

import os

import yaml

from synreal.config import load_config, validate_config
from synreal.cpus import job_threads

from .conftest import REPO


def test_the_budget_is_omp_num_threads_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert job_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    assert job_threads() == 1


def test_without_a_budget_it_is_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert job_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "many")  # unreadable: as if unset
    assert job_threads() == len(os.sched_getaffinity(0))


def test_ingest_threads_come_from_the_study():
    # The demo gives ingest one thread: on 2 cores a 2-thread ingest waited for both, holding
    # back every evaluation (bench/README.md); the full study decodes with 8; a study without
    # the key keeps the old 2.
    demo = load_config(REPO / "config" / "config.yaml")
    assert demo["resources"]["ingest"] == {"runtime": 60, "mem_mb": 4000, "threads": 1}
    study = yaml.safe_load((REPO / "config" / "studies" / "afhq_pets.yaml").read_text())
    assert validate_config(study, check_paths=False)["resources"]["ingest"]["threads"] == 8
    del study["resources"]["ingest"]
    assert validate_config(study, check_paths=False)["resources"]["ingest"]["threads"] == 2
    rule = (REPO / "workflow" / "rules" / "ingest.smk").read_text()
    assert 'threads: config["resources"]["ingest"]["threads"]' in rule
