"""Study files are whole studies: run as written, nothing of the demo merged in, and a
rehearsal that changes only counts, steps, epochs, paths and the device."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from synreal.config import validate_config
from synreal.rehearsal import changed_keys, disallowed, folder_for, rehearsal_config
from synreal.rehearsal.fixtures import prepare

from ..conftest import REPO, snakemake_env

STUDIES = sorted((REPO / "config" / "studies").glob("*.yaml"))
RESOLVED = Path(".snakemake") / "synreal" / "resolved_config.json"


def study(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_the_rehearsal_changes_only_counts_steps_and_epochs(path):
    original = study(path)
    rehearsed = rehearsal_config(original)
    changes = changed_keys(original, rehearsed)
    assert changes, "a rehearsal that changes nothing would train for days on a CPU"
    assert disallowed(changes) == []
    resolved = changed_keys(validate_config(original, check_paths=False),
                            validate_config(rehearsed, check_paths=False))
    assert disallowed(resolved) == [], "defaults filled in must not differ either"


@pytest.mark.parametrize("key, value", [
    ("pretrain.params.arch", "vit_tiny_demo"),
    ("pretrain.params.out_dim", 256),
    ("resources.pretrain.gpu", 0),
    ("generators.afhq_syn.params.cfg_scale", 1.5),
])
def test_any_other_change_is_reported(key, value):
    original = study(REPO / "config" / "studies" / "afhq_pets.yaml")
    rehearsed = rehearsal_config(original)
    node = rehearsed
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    assert disallowed(changed_keys(original, rehearsed)) == [key]


def test_rehearsal_folder_is_stable_for_jobs_started_inside_it(tmp_path):
    folder = folder_for(["config/studies/afhq_pets.yaml"], tmp_path)
    assert folder == tmp_path / "rehearsal" / "afhq_pets"
    assert folder_for(["config/studies/afhq_pets.yaml"], folder) == folder


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """A folder holding what the full study names: data in official layouts, weights."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("study")
    prepare(validate_config(study(REPO / "config" / "studies" / "afhq_pets.yaml"),
                            check_paths=False), folder)
    # RealTune's ssl subset (0.1 of AFHQ's training images) must fill its batch of 64
    # before the study plans anything: 660 more small AFHQ training images
    for i in range(660):
        cls = ("cat", "dog", "wild")[i % 3]
        Image.new("RGB", (16, 16), (i % 255, 80, 160)).save(
            folder / "data" / "afhq" / "train" / cls / f"flickr_{cls}_9{i:05d}.jpg")
    return folder


def dry_run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                           str(folder), "-n", *args], capture_output=True, text=True,
                          env=snakemake_env(), check=False, timeout=600)


@pytest.mark.slow
def test_the_study_resolves_to_its_file_plus_the_schema_defaults(study_folder):
    """README's one-table command, as written, in a folder holding the study's data."""
    path = REPO / "config" / "studies" / "afhq_pets.yaml"
    proc = dry_run(study_folder, "--configfile", str(path), "--cores", "all", "table_main")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = json.loads((study_folder / RESOLVED).read_text())
    assert resolved == validate_config(study(path), base=study_folder)
    assert "toyworld" not in json.dumps(resolved["datasets"])


def _pretrain_jobs(stdout: str) -> dict[str, dict[str, str]]:
    """key -> resources of each ``rule pretrain`` job a dry run lists."""
    jobs = {}
    for block in stdout.split("rule pretrain:")[1:]:
        block = block.split("\n\n")[0]
        key = re.search(r"wildcards: key=(\w+)", block)[1]
        line = re.search(r"resources: (.*)", block)[1]
        jobs[key] = dict(item.split("=", 1) for item in line.split(", "))
    return jobs


@pytest.mark.slow
def test_the_random_init_control_asks_slurm_for_a_cpu_for_minutes(study_folder):
    """Its jobs export an untrained backbone in seconds: no GPU-day request to queue for."""
    from synreal.plan import build_plan
    from synreal.study import UNTRAINED_RESOURCES

    path = REPO / "config" / "studies" / "afhq_pets.yaml"
    proc = dry_run(study_folder, "--configfile", str(path), "--cores", "all", "table_main")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _pretrain_jobs(proc.stdout)
    config = validate_config(study(path), base=study_folder)
    untrained = {job.key for job in build_plan(config).replicates["control_random_init"]}
    assert len(untrained) == 3 and untrained <= set(jobs)
    wanted = config["resources"]["pretrain"]
    for key, resources in jobs.items():
        if key in untrained:
            assert (resources["gpu"], resources["slurm_partition"], resources["runtime"]) == (
                "0", config["slurm"]["cpu_partition"], str(UNTRAINED_RESOURCES["runtime"]))
        else:
            assert (resources["gpu"], resources["slurm_partition"], resources["runtime"]) == (
                str(wanted["gpu"]), config["slurm"]["gpu_partition"], str(wanted["runtime"]))


def test_untrained_resources_drop_the_gpu_model_and_never_ask_for_more():
    from synreal.study import untrained_resources

    full = {"gpu": 2, "gpu_model": "a100", "runtime": 10, "mem_mb": 64000,
            "slurm_partition": "gpu"}
    assert untrained_resources(full, "cpu") == {"gpu": 0, "gpu_model": "", "runtime": 10,
                                                "mem_mb": 8000, "slurm_partition": "cpu"}


@pytest.mark.slow
def test_without_a_configfile_the_demo_runs(tmp_path):
    proc = dry_run(tmp_path, "--cores", "all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = json.loads((tmp_path / RESOLVED).read_text())
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert resolved == validate_config(demo, base=tmp_path)


@pytest.mark.slow
def test_a_missing_dataset_is_one_sentence_and_writes_nothing(tmp_path):
    path = REPO / "config" / "studies" / "afhq_pets.yaml"
    proc = dry_run(tmp_path, "--configfile", str(path), "--cores", "all")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "synreal config error" in line]
    assert errors == ["synreal config error: datasets.afhq.path: folder data/afhq does not "
                      "exist; download the afhq dataset there or fix the path."]
    assert not (tmp_path / "results").exists()


def test_a_rehearsal_runs_its_gpu_stages_side_by_side_on_the_cpus(monkeypatch):
    """Rehearsal GPU stages run on the CPU: --cores bounds them, not the host's GPUs."""
    import os

    from synreal import study

    monkeypatch.setattr(study, "host_gpus", lambda: [])
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    config = {"resources": {"pretrain": {"gpu": 2}, "features": {"gpu": 1}, "ingest": {}}}
    assert study.gpu_limit(config, rehearsal=True) == 8


def test_only_the_main_process_writes_the_rehearsals_fixtures(tmp_path, monkeypatch, capsys):
    """A job re-reading the Snakefile leaves the fixtures alone, even when the code that
    writes them changed since the run started (it would swap a dataset under running jobs);
    the main process of the next run rewrites them."""
    from synreal.rehearsal import fixtures
    from synreal.study import load_study

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNREAL_REHEARSAL", "0")  # restored after load_study sets it
    config = {**study(REPO / "config" / "studies" / "afhq_pets.yaml"), "rehearsal": True}
    files = ["config/studies/afhq_pets.yaml"]
    load_study(dict(config), files)
    assert "synreal rehearsal: runs the study" in capsys.readouterr().err
    stamp = tmp_path / "rehearsal" / "afhq_pets" / "data" / "oxford-iiit-pet" / fixtures.STAMP
    written = stamp.read_text()
    monkeypatch.setattr(fixtures, "PET_PER_BREED", {"trainval": 2, "test": 2})
    job = load_study(dict(config), files, quiet=True)
    assert job.rehearsal and stamp.read_text() == written
    assert capsys.readouterr().err == ""
    load_study(dict(config), files)
    assert stamp.read_text() != written


def test_a_job_rereading_the_snakefile_does_not_check_the_data_again(tmp_path, monkeypatch):
    """On Slurm every job re-reads the Snakefile: the dataset scans and the weights checks
    (which import the audit models' libraries) are the main process's, made once before any
    job is scheduled."""
    from synreal.errors import ConfigError
    from synreal.study import load_study

    monkeypatch.chdir(tmp_path)  # none of the study's datasets or weights are here
    monkeypatch.setenv("SYNREAL_REHEARSAL", "0")
    config = study(REPO / "config" / "studies" / "afhq_pets.yaml")
    files = ["config/studies/afhq_pets.yaml"]
    with pytest.raises(ConfigError, match="datasets.afhq.path"):
        load_study(dict(config), files)
    job = load_study(dict(config), files, quiet=True)
    assert job.config["datasets"]["afhq"]["path"] == config["datasets"]["afhq"]["path"]
    job.build_plan()
    assert not RESOLVED.exists()  # the main process records the resolved config, once


PLANNING_MUST_NOT_IMPORT = ("torch", "pandas", "matplotlib", "timm", "transformers", "scipy")


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/studies/afhq_pets.yaml"])
def test_planning_in_a_job_imports_no_heavy_library(config_file):
    """Each Slurm job reads the Snakefile twice (the plugin's job step, then its srun), so
    what planning imports is paid twice per job: it once imported the audit runner, and with
    it pandas and matplotlib (1.8 s a read). A fresh interpreter, as a job has."""
    code = f"""
import sys, yaml
from synreal.study import load_study
config = yaml.safe_load(open({config_file!r}))
load_study(config, [{config_file!r}], quiet=True).build_plan()
print(sorted(m for m in {PLANNING_MUST_NOT_IMPORT!r} if m in sys.modules))
"""
    result = subprocess.run(["python", "-c", code], cwd=REPO, capture_output=True, text=True,
                            env=snakemake_env(), check=False, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_the_schema_is_parsed_once_and_handed_out_as_a_copy():
    from synreal.config import load_schema

    first = load_schema()
    first["properties"].clear()
    assert load_schema()["properties"], "a caller's change leaked into the cached schema"
