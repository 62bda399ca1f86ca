"""GPUs on one host: concurrent jobs never share a GPU, and Snakemake never starts more GPU
jobs than there are GPUs (a faked host of two GPUs: CUDA_VISIBLE_DEVICES=0,1)."""

import os
import subprocess
import sys
import time

import pytest

from synreal.gpu_slots import claim, host_gpus

from .conftest import REPO, snakemake_env


def job(tmp_path, name: str, seconds: float, gpus: int = 1) -> subprocess.Popen:
    """A job holding ``gpus`` GPUs for ``seconds``; it writes which ones it saw and when."""
    script = (f"import os, time; start = time.time(); time.sleep({seconds!r}); "
              "print(os.environ['CUDA_VISIBLE_DEVICES'], start, time.time())")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "0,1", "TMPDIR": str(tmp_path),
           "PYTHONPATH": str(REPO / "src")}
    env.pop("SLURM_JOB_ID", None)
    env.pop("SYNREAL_FORCE_CPU", None)
    out = open(tmp_path / f"{name}.txt", "w")  # noqa: SIM115 (closed by the child's exit)
    return subprocess.Popen([sys.executable, "-m", "synreal.gpu_slots", str(gpus), "--",
                             sys.executable, "-c", script], stdout=out, env=env)


def test_host_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert host_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert host_gpus() == []


def test_three_jobs_on_two_gpus_never_share_one(tmp_path):
    procs = [job(tmp_path, f"job{i}", 1.5) for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    runs = []
    for i in range(3):
        gpu, start, end = (tmp_path / f"job{i}.txt").read_text().split()
        runs.append((gpu, float(start), float(end)))
    assert {gpu for gpu, _, _ in runs} == {"0", "1"}
    for a in range(3):
        for b in range(a + 1, 3):
            (ga, sa, ea), (gb, sb, eb) = runs[a], runs[b]
            if ga == gb:  # the same GPU: one after the other
                assert ea <= sb + 0.05 or eb <= sa + 0.05, runs


def test_a_job_asking_both_gpus_sees_both(tmp_path):
    assert job(tmp_path, "both", 0.1, gpus=2).wait(timeout=60) == 0
    assert (tmp_path / "both.txt").read_text().split()[0] == "0,1"


def test_a_killed_job_frees_its_gpu(tmp_path):
    holder = job(tmp_path, "holder", 60)
    time.sleep(1.0)
    holder.kill()
    holder.wait()
    locks = tmp_path / f"synreal-gpu-locks-{os.getuid()}"
    assert sorted(p.name for p in locks.iterdir()) == ["gpu0.lock"]
    fds = claim(2, ["0", "1"], locks, timeout_s=10)
    assert len(fds) == 2
    for fd in fds:
        os.close(fd)


def test_more_gpus_than_the_host_has_is_one_sentence(tmp_path):
    with pytest.raises(SystemExit, match="asks for 3 GPU"):
        claim(3, ["0", "1"], tmp_path)


@pytest.mark.slow
def test_snakemake_offers_the_host_gpus_as_its_gpu_resource(tmp_path):
    """`snakemake --cores all` with no extra flag caps GPU jobs at the host's GPU count."""
    env = {**snakemake_env(), "CUDA_VISIBLE_DEVICES": "0,1"}
    proc = subprocess.run(["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--cores", "all", "table_datasets", "--configfile",
                           str(REPO / "tests" / "configs" / "micro.yaml")],
                          capture_output=True, text=True, env=env, check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "synreal: at most 2 concurrent GPU job(s) on this host" in proc.stderr


@pytest.mark.slow
def test_a_study_asking_more_gpus_than_the_host_has_stops_before_any_job(tmp_path):
    config = tmp_path / "gpu.yaml"
    micro = (REPO / "tests" / "configs" / "micro.yaml").read_text()
    config.write_text(micro + "\nresources:\n  generate: {gpu: 1}\n")
    env = {**snakemake_env(), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(tmp_path), "--cores", "all", "table_datasets", "--configfile",
                           str(config)], capture_output=True, text=True, env=env, check=False,
                          timeout=600)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "synreal config error" in line]
    assert len(errors) == 1 and errors[0].startswith(
        "synreal config error: resources.generate.gpu asks for 1 GPU(s) per job but this host "
        "has 0 usable"), proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()
