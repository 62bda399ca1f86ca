"""Warm starts: a job forked from a warm server behaves as the job's own process would.

Each test runs ``python -m synreal`` as Snakemake's shell would, with ``SYNREAL_WARM=1`` and
its own socket folder (``TMPDIR``, short: a socket path holds at most 108 bytes, and a
deeper folder would send the server to /tmp), so it starts and talks to its own server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from synreal import faults, warm
from synreal.study import enable_warm_starts

from .conftest import REPO


@pytest.fixture
def sockets():
    """A short folder of its own for the test's server socket (its TMPDIR)."""
    folder = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(sockets: Path, **extra: str) -> dict:
    env = {**os.environ, "TMPDIR": str(sockets), warm.ENV_VAR: "1",
           "PYTHONPATH": str(REPO / "src"), **extra}
    for name in (warm.CHILD_ENV_VAR, "SLURM_JOB_ID"):
        env.pop(name, None)
    return env


def _synreal(args, env, cwd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synreal", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False, **kwargs)


def _socket(sockets: Path) -> Path | None:
    return next(sockets.glob("synreal-warm-*.sock"), None)


def _server_pid(sockets: Path) -> int:
    return int(next(sockets.glob("synreal-warm-*.lock")).read_text())


def _wait_for_socket(sockets: Path) -> Path:
    deadline = time.monotonic() + 60
    while (path := _socket(sockets)) is None:
        assert time.monotonic() < deadline, "no warm server came up within 60 s"
        time.sleep(0.2)
    return path


@pytest.fixture
def server(sockets, tmp_path):
    """A warm server for this test's TMPDIR: the first job starts it (and runs cold)."""
    env = _env(sockets)
    assert _synreal(["--help"], env, tmp_path).returncode == 0
    _wait_for_socket(sockets)
    yield env
    os.kill(_server_pid(sockets), signal.SIGKILL)


def _spec(tmp_path: Path, rows: int = 3) -> str:
    """A toy-world job spec (the lightest stage that writes an artifact)."""
    return json.dumps({"params": {"layout": "afhq", "per_class": {"train": rows, "test": 1},
                                  "image_size": 16, "seed": 0}})


def test_a_warm_job_writes_what_a_cold_one_writes_with_its_own_streams_cwd_and_env(
        server, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    warm_run = _synreal(["toyworld", "--spec-json", _spec(tmp_path), "--out", "warm"],
                        {**server, "SYNREAL_PROBE": "x"}, work)
    assert warm_run.returncode == 0, warm_run.stderr
    assert "synreal toyworld: wrote warm" in warm_run.stdout
    cold = _synreal(["toyworld", "--spec-json", _spec(tmp_path), "--out", "cold"],
                    {**server, warm.ENV_VAR: "0"}, work)
    assert cold.returncode == 0, cold.stderr
    for name in ("draws.parquet",):
        assert (work / "warm" / name).read_bytes() == (work / "cold" / name).read_bytes()
    files = sorted(p.relative_to(work / "warm") for p in (work / "warm").rglob("*.png"))
    assert files == sorted(p.relative_to(work / "cold") for p in (work / "cold").rglob("*.png"))
    assert all((work / "warm" / f).read_bytes() == (work / "cold" / f).read_bytes()
               for f in files)


def test_the_job_is_a_forked_child_with_the_jobs_env_and_cwd_and_signals_reach_it(
        server, sockets, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    # a toy world large enough to be caught running
    proc = subprocess.Popen([sys.executable, "-m", "synreal", "toyworld", "--spec-json",
                             _spec(tmp_path, rows=4000), "--out", "big"],
                            env=server, cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children = _wait_for_children(sockets)
    assert len(children) == 1, children
    child = children[0]
    assert Path(f"/proc/{child}/cwd").resolve() == work.resolve()
    parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent != proc.pid, "the job runs in the server's child, not in the client"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not (work / "big").exists(), "a killed job leaves no artifact"
    # the CLI's own error path through a warm child: exit code 2, its sentence on stderr
    bad = _synreal(["toyworld", "--spec-json", "{not json", "--out", "x"], server, work)
    assert bad.returncode == 2 and "--spec-json is not valid JSON" in bad.stderr
    # the job's environment is the child's: a fault injected through it fires there
    full = _synreal(["toyworld", "--spec-json", _spec(tmp_path), "--out", "full"],
                    {**server, faults.ENV_VAR: "artifact.commit:1:enospc"}, work)
    assert full.returncode == 2 and "the disk is full" in full.stderr, full.stderr
    assert not (work / "full").exists()


def _wait_for_children(sockets: Path) -> list[int]:
    deadline = time.monotonic() + 30
    while not (children := _warm_children(sockets)):
        assert time.monotonic() < deadline, "no warm child appeared"
        time.sleep(0.1)
    return children


def test_a_killed_client_takes_its_job_with_it(server, sockets, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "synreal", "toyworld", "--spec-json",
                             _spec(tmp_path, rows=4000), "--out", "big"], env=server,
                            cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    children = _wait_for_children(sockets)
    assert len(children) == 1, children
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while _alive(children[0]):
        assert time.monotonic() < deadline, "the orphaned job still runs"
        time.sleep(0.2)


def _warm_children(sockets: Path) -> list[int]:
    """Pids of the jobs this test's server is running (its child processes)."""
    server = _server_pid(sockets)
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server and _alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_warm_starts_stay_off_on_slurm_when_asked_off_and_inside_a_warm_child():
    assert warm.enabled({warm.ENV_VAR: "1"})
    assert not warm.enabled({warm.ENV_VAR: "0"})
    assert not warm.enabled({})
    assert not warm.enabled({warm.ENV_VAR: "1", "SLURM_JOB_ID": "7"})
    assert not warm.enabled({warm.ENV_VAR: "1", warm.CHILD_ENV_VAR: "123"})


class _Workflow:
    def __init__(self, local_exec: bool):
        self.local_exec = local_exec


@pytest.mark.parametrize(("local", "gpu", "rehearsal", "preset", "expected"), [
    (True, 0, False, None, "1"),     # the demo: every stage on the CPU
    (True, 1, True, None, "1"),      # a rehearsal runs its GPU stages on the CPU
    (True, 1, False, None, None),    # a GPU study keeps each job in its own process
    (False, 0, False, None, None),   # Slurm
    (True, 0, False, "0", "0"),      # the user's setting wins
])
def test_the_snakefile_turns_warm_starts_on_for_local_cpu_runs_only(
        monkeypatch, local, gpu, rehearsal, preset, expected):
    if preset is None:
        monkeypatch.delenv(warm.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(warm.ENV_VAR, preset)
    config = {"resources": {"pretrain": {"gpu": gpu, "threads": 1}}}
    enable_warm_starts(_Workflow(local), config, rehearsal)
    assert os.environ.get(warm.ENV_VAR) == expected


def test_concurrent_first_jobs_start_one_server(sockets, tmp_path):
    env = _env(sockets)
    clients = [subprocess.Popen([sys.executable, "-m", "synreal", "--help"], env=env,
                                cwd=tmp_path, stdout=subprocess.DEVNULL) for _ in range(3)]
    assert [c.wait(timeout=120) for c in clients] == [0, 0, 0]
    path = _wait_for_socket(sockets)
    pid = _server_pid(sockets)
    try:
        # the others found the lock taken and exited (on a loaded host, within seconds)
        deadline = time.monotonic() + 30
        while (servers := [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                           and str(path).encode() in _cmdline(p)]) != [pid]:
            assert time.monotonic() < deadline, (servers, pid)
            time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGKILL)


def _cmdline(process: Path) -> bytes:
    try:
        return (process / "cmdline").read_bytes()
    except OSError:
        return b""


def _serve_briefly(sockets: Path, preload: tuple[str, ...] | None = None
                   ) -> tuple[subprocess.CompletedProcess, Path]:
    """Run a server (with ``preload`` in place of PRELOAD) that exits after 1 s idle."""
    path = sockets / "synreal-warm-test.sock"
    code = ("import sys; from pathlib import Path; import synreal.warm as w; "
            f"w.PRELOAD = {preload!r} or w.PRELOAD; w.serve(Path(sys.argv[1]), idle_s=1)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], env=_env(sockets),
                          timeout=120, check=False)
    return done, path


def test_an_idle_server_exits_and_removes_its_socket(sockets):
    done, path = _serve_briefly(sockets)
    assert done.returncode == 0 and not path.exists()


def test_a_deep_tmpdir_puts_the_socket_in_the_systems_folder(monkeypatch, sockets):
    monkeypatch.setattr(tempfile, "tempdir", str(sockets))
    assert warm.socket_path().parent == sockets
    deep = "/tmp/" + "d" * 90
    monkeypatch.setattr(tempfile, "tempdir", deep)
    path = warm.socket_path()
    assert path.parent == Path("/tmp") and len(str(path)) <= 100
    assert path.name.startswith("synreal-warm-")


def test_a_server_whose_starting_folder_is_deleted_preloads_and_serves(sockets, tmp_path):
    """The folder of the job that starts a server may go while the server preloads.

    torch._dynamo's config calls os.getcwd() on import; in a deleted folder that import
    failed, and every job forked afterwards inherited a half-imported torch._inductor.
    """
    start = tmp_path / "first-job"
    start.mkdir()
    env = _env(sockets)
    assert _synreal(["--help"], env, start).returncode == 0
    shutil.rmtree(start)
    deadline = time.monotonic() + 60
    while _socket(sockets) is None:
        cold = next(sockets.glob("synreal-warm-*.cold"), None)
        assert cold is None, cold.read_text()
        assert time.monotonic() < deadline, "no warm server came up within 60 s"
        time.sleep(0.2)
    pid = _server_pid(sockets)
    try:
        assert os.readlink(f"/proc/{pid}/cwd") == "/"
        work = tmp_path / "work"
        work.mkdir()
        done = _synreal(["toyworld", "--spec-json", _spec(tmp_path), "--out", "warm"], env, work)
        assert done.returncode == 0, done.stderr
        assert "synreal toyworld: wrote warm" in done.stdout
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_server_whose_preload_fails_serves_no_job_and_says_why(sockets):
    done, path = _serve_briefly(sockets, ("json", "no_such_module_here"))
    assert done.returncode == 0 and not path.exists()
    reason = path.with_suffix(".cold").read_text()
    assert "importing no_such_module_here failed (ModuleNotFoundError" in reason
    assert reason.endswith("jobs run cold\n")
