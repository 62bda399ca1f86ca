"""Warm starts for local stage jobs: fork each job from a process that has torch imported.

A stage job spends about 4 CPU seconds importing torch, torchvision (which imports
torch._dynamo), timm, pandas and pyarrow before it does any work; the demo's and the
rehearsal's jobs mostly do a few seconds of work, so the imports are a third to a half of
their CPU. With ``SYNREAL_WARM=1`` (the Snakefile sets it) ``python -m synreal <stage>``
becomes a thin client: it hands its arguments, environment, working folder and standard
streams to a warm server over a Unix socket, and the server forks a child that runs the
stage exactly as the job's own process would have, then reports the child's exit status.

* One server per interpreter, source tree and user; it starts on the first job that finds
  none (that job runs as usual, cold) and exits after :data:`IDLE_S` seconds without a job.
* The server only imports third-party libraries (:data:`PRELOAD`) and never runs a tensor
  operation, so no thread pool, CUDA context or OpenMP region exists when it forks; each
  child drops the server's copy of ``synreal`` and imports the job's, reads the job's
  environment (thread counts are applied with ``torch.set_num_threads``) and runs the CLI.
* The client forwards SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 to the child (the
  pre-emption and time-limit signals included) and exits with the child's code (128 + N
  when signal N ended it); a client that dies takes its child with it.
* The server works in ``/`` (the job folder that started it may be deleted under it), and a
  server whose preload failed serves no job: it writes why to ``<socket>.cold`` and exits.
* Off inside Slurm jobs (each job runs on its own allocation, often another node), with
  ``SYNREAL_WARM=0``, and where the platform lacks ``socket.send_fds``. Any failure to reach
  a server falls back to running the job in its own process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synreal.cpus import job_threads

ENV_VAR = "SYNREAL_WARM"
#: Set in a warm child's environment: the server's pid (tests and logs tell warm from cold).
CHILD_ENV_VAR = "SYNREAL_WARM_SERVER"
#: Set in a warm child's environment: the client's process group, the one the job would be
#: in had it run in its own process (the group a ``killgroup`` fault kills, synreal.faults).
JOB_GROUP_ENV_VAR = "SYNREAL_WARM_JOB_GROUP"
#: Seconds a server with no job waits for one before it exits.
IDLE_S = 60.0
#: Seconds a server's "cannot fork safely here" marker keeps clients from starting another.
COLD_MARKER_S = 3600.0
#: Longest socket path the kernel takes (sun_path holds 108 bytes with its NUL).
_MAX_SOCKET_PATH = 100
#: Libraries the server imports once: what the stages' jobs spend their start-up on.
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "PIL.Image", "torch",
           "torchvision", "torchvision.transforms.v2", "timm", "safetensors.torch", "tqdm",
           "yaml")
#: Environment variables the preloaded libraries read when they load (Hugging Face's cache
#: and offline settings, torch's and timm's): jobs that differ in them get their own server.
IMPORT_TIME_ENV_PREFIXES = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_", "PYTORCH_",
                            "TIMM_", "PYARROW_", "ARROW_")
#: Signals the client passes on to the child it waits for.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_MAX_MESSAGE = 1 << 20
#: The server's environment for libraries that start threads when they load: one thread
#: each (a child applies its job's own counts, :func:`_apply_thread_counts`), and no
#: jemalloc background thread in pyarrow.
SERVER_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "JE_ARROW_MALLOC_CONF": "background_thread:false"}


def enabled(environ: dict | None = None) -> bool:
    """Whether this process should ask a warm server to run its job."""
    environ = os.environ if environ is None else environ
    return (environ.get(ENV_VAR) == "1" and "SLURM_JOB_ID" not in environ
            and CHILD_ENV_VAR not in environ and hasattr(socket, "send_fds"))


def socket_path() -> Path:
    """The server's socket for this interpreter, source tree and user."""
    import synreal

    read_at_import = sorted((k, v) for k, v in os.environ.items()
                            if k.startswith(IMPORT_TIME_ENV_PREFIXES))
    identity = json.dumps([sys.executable, str(Path(synreal.__file__).resolve().parent),
                           sys.path[1:], os.getuid(), read_at_import])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"synreal-warm-{digest}.sock"
    if len(str(path)) > _MAX_SOCKET_PATH:  # a deep TMPDIR: the system's own folder
        path = Path("/tmp") / path.name
    return path


# ---------------------------------------------------------------- client


def run(argv: list[str]) -> int | None:
    """Run ``python -m synreal argv`` in a warm child; None when no server could take it.

    With None the caller runs the job itself; a server is then started for the next jobs.
    """
    path = socket_path()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        _start_server(path)
        return None
    with client:
        env = dict(os.environ) | {JOB_GROUP_ENV_VAR: str(os.getpgid(0))}
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env, "path": sys.path})
        try:
            socket.send_fds(client, [request.encode()], [0, 1, 2])
            reply = client.recv(_MAX_MESSAGE)
        except OSError:
            return None
        if not reply:  # the server refused or went away before forking: run cold
            return None
        pid = json.loads(reply)["pid"]
        previous = {sig: signal.signal(sig, lambda sig, _frame: _forward(pid, sig))
                    for sig in FORWARDED}
        try:
            reply = client.recv(_MAX_MESSAGE)  # retried after each forwarded signal (PEP 475)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if not reply:
        print(f"synreal: the warm server lost job pid {pid} (server gone); rerun the job, "
              f"or set {ENV_VAR}=0 to run jobs in their own processes", file=sys.stderr)
        return 1
    code = json.loads(reply)["exit"]
    return 128 - code if code < 0 else code


def _forward(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _start_server(path: Path) -> None:
    """Start a detached server for ``path`` (it exits at once if another one answers)."""
    marker = path.with_suffix(".cold")
    with contextlib.suppress(OSError):  # a server found it could not serve here lately
        if time.time() - marker.stat().st_mtime < COLD_MARKER_S:
            return
    # libraries that start thread pools when loaded get one thread: the server forks
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR} | SERVER_ENV
    with contextlib.suppress(OSError):
        subprocess.Popen([sys.executable, "-m", "synreal.warm", str(path)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, env=env)


# ---------------------------------------------------------------- server


def _preload() -> str | None:
    """Import :data:`PRELOAD`; the first failure as one line, None when all imported.

    A failed import can leave its package half-initialised in ``sys.modules`` (its finished
    submodules stay, their parent goes), and every child forked afterwards would inherit
    that state: torch._dynamo's import then fails in each job with a "partially initialized
    module" error. So a server whose preload failed must not fork any job.
    """
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 (reported in the cold marker)
            return f"importing {name} failed ({type(error).__name__}: {error})"
    return None


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _listen(path: Path) -> socket.socket | None:
    """The listening socket at ``path``; None when another live server holds it."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        probe.connect(str(path))
        return None  # another server answers
    except OSError:
        pass
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener


def serve(path: Path, idle_s: float = IDLE_S) -> None:
    """Preload the libraries, then fork one child per job until idle for ``idle_s``.

    A second server for the same socket exits at once (before importing anything): the
    first holds ``<socket>.lock`` for its lifetime.
    """
    import fcntl

    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 (held until exit)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")  # which process the server is
    lock.flush()
    # a daemon's working folder is its own: the folder of the job that started it may be
    # deleted while it preloads (torch._dynamo's config calls os.getcwd() on import)
    os.chdir("/")
    marker = path.with_suffix(".cold")
    failure = _preload()
    if failure is not None:
        marker.write_text(f"{failure}: jobs run cold\n")
        return
    if _threads() > 1:  # forking a process with threads is unsafe: jobs here stay cold
        marker.write_text(f"{_threads()} threads after the preload: jobs run cold\n")
        return
    try:
        listener = _listen(path)
    except OSError as error:
        marker.write_text(f"cannot listen on {path}: {error}; jobs run cold\n")
        return
    if listener is None:
        return
    children: dict[int, socket.socket] = {}
    last_activity = time.monotonic()
    try:
        while children or time.monotonic() - last_activity < idle_s:
            ready, _, _ = select.select([listener, *children.values()], [], [], 0.5)
            for sock in ready:
                if sock is listener:
                    try:
                        connection, _ = listener.accept()
                    except OSError:  # e.g. out of file descriptors: that client runs cold
                        continue
                    pid = _fork_job(connection)
                    if pid is None:
                        connection.close()
                    else:
                        children[pid] = connection
                    last_activity = time.monotonic()
                elif not _received(sock):  # the client is gone: so is its job
                    pid = next(p for p, c in children.items() if c is sock)
                    _forward(pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, 0)
                    children.pop(pid).close()
            while children:
                pid, status = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                connection = children.pop(pid, None)
                if connection is not None:
                    with contextlib.suppress(OSError):
                        connection.send(json.dumps(
                            {"exit": os.waitstatus_to_exitcode(status)}).encode())
                    connection.close()
                last_activity = time.monotonic()
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _received(connection: socket.socket) -> bool:
    """Whether the client's end is still open (it sends nothing after its request)."""
    try:
        return bool(connection.recv(_MAX_MESSAGE))
    except OSError:
        return False


def _fork_job(connection: socket.socket) -> int | None:
    """Fork the child for the request on ``connection``; its pid, sent to the client too."""
    try:
        message, fds, _, _ = socket.recv_fds(connection, _MAX_MESSAGE, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        return None
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    pid = os.fork()
    if pid == 0:  # the child never returns
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    try:
        connection.send(json.dumps({"pid": pid}).encode())
    except OSError:
        _forward(pid, signal.SIGKILL)
    return pid


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's own process, run the CLI, exit with its code."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        # the server's lock, listening socket and other jobs' connections are not the job's
        # (a child holding the lock would keep a new server from starting after this one)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's own streams)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[CHILD_ENV_VAR] = str(os.getppid())
        sys.argv = [sys.argv[0], *request["argv"]]
        sys.path[:] = request["path"]
        for name in [m for m in sys.modules if m == "synreal" or m.startswith("synreal.")]:
            del sys.modules[name]
        _apply_thread_counts()
        from synreal.cli import main

        code = main(request["argv"])
    except SystemExit as stop:  # as the interpreter does: a message goes to stderr, code 1
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 (reported as the job's own process would)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            import atexit

            atexit._run_exitfuncs()  # what the job's own interpreter would run at exit
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _apply_thread_counts() -> None:
    """The job's thread counts, for libraries the server loaded single-threaded.

    Without OMP_NUM_THREADS a job's torch would use one thread per core, and its BLAS as
    many: the server's single thread must not become the job's.
    """
    count = job_threads()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(count)


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
