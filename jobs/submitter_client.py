"""Submit a PyFlink job through the stack's warm client JVM (``STREAMSCORE_FLINK_SUBMITTER=daemon``).

``flink run`` starts a client JVM for each submission, and a PyFlink job planned in a cold JVM takes
8-14 s here, most of it class loading and interpretation; planned in a JVM that has planned one before,
the same job takes ~2 s. With the daemon submitter, the first submission from a stack home starts
``python -m jobs.submitter_daemon`` (one Python process and its PyFlink gateway JVM, in a session of its
own), and every submission from that home goes through it over a Unix socket in the home's run folder,
one at a time. It exits after ``IDLE_S`` (5 minutes) without a request, when the project's code changes under it (the
request is then sent to a fresh one), or at ``streamscore stack down`` (:func:`stop_daemon`).

A request names the job's script, its arguments, the cluster's REST address, the workers' Python, a
savepoint, and the caller's working directory and environment as ``flink run`` would get them: without
``STREAMSCORE_*PASSWORD*`` variables, with the path of the job's secrets file (jobs/job_secrets.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jobs.flink_home import client_home
from jobs.job_secrets import without_secrets
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.locks import exclusive

IDLE_S = 300.0  # a daemon with no request for this long exits
CONNECT_TIMEOUT_S = 10.0
# a request a daemon that was leaving (code changed, idle, another checkout's job) did not take goes to a
# fresh one; a restart may meet the old listener's queue once more before the fresh daemon listens
TRIES = 5
START_TIMEOUT_S = 60.0
SOCKET_PATH_MAX = 100  # bytes; Linux allows 107 in sun_path
DAEMON_MODULE = "jobs.submitter_daemon"


class SubmitterError(StreamscoreError):
    """The warm submitter could not be started or reached, or refused the job (its one-line cause)."""


@dataclass(frozen=True)
class SubmitRequest:
    """One job to plan and submit detached: what ``flink run -d -m REST [-s SAVEPOINT] -pyexec PYTHON
    -py SCRIPT ARGS...`` says, run from ``cwd`` with the environment ``env``."""

    script: str
    args: tuple[str, ...]
    rest: str
    python: str
    savepoint: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None

    def to_line(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def from_json(cls, text: str) -> SubmitRequest:
        raw = json.loads(text)
        return cls(script=raw["script"], args=tuple(raw["args"]), rest=raw["rest"], python=raw["python"],
                   savepoint=raw.get("savepoint"), env=tuple((k, v) for k, v in raw.get("env", ())),
                   cwd=raw.get("cwd"))


@dataclass(frozen=True)
class DaemonFiles:
    """Where a stack home's daemon listens, writes its pid and its log."""

    run: Path
    pid: Path
    lock: Path
    log: Path

    @classmethod
    def of(cls, settings: Settings) -> DaemonFiles:
        run = settings.run_dir
        return cls(run, run / "flink-submitter.pid", run / "flink-submitter.lock",
                   settings.log_dir / "flink-submitter.log")

    @property
    def socket(self) -> Path:
        return _socket_path(self.run)


def _socket_path(run_dir: Path) -> Path:
    """In the run folder; where that path is too long for a Unix socket (108 bytes), in a 0700 folder of this
    user's under the temporary directory, named by the run folder."""
    path = run_dir / "flink-submitter.sock"
    if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
        return path
    folder = Path(tempfile.gettempdir()) / f"streamscore-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    stat = folder.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise SubmitterError(f"{folder} is not this user's alone: remove it, or set a shorter STREAMSCORE_HOME")
    return folder / f"submitter-{hashlib.sha256(os.fsencode(run_dir)).hexdigest()[:16]}.sock"


# how a connection to a daemon that left before reading the request fails: safe to send again
LEFT_BEFORE_READING = (ConnectionResetError, BrokenPipeError)


def submit_through_daemon(settings: Settings, request: SubmitRequest, timeout_s: float) -> str:
    """The submitted job's id. A daemon that left (the code changed, or it was idle) before it read the
    request answers ``restart``, resets the connection or closed it before the request was sent whole
    (a broken pipe): the request then goes to a fresh one."""
    log = DaemonFiles.of(settings).log
    for _ in range(TRIES):
        try:
            reply = _exchange(_connected(settings), request, timeout_s)
        except LEFT_BEFORE_READING:
            continue
        if reply.get("restart"):
            continue
        if "error" in reply or "job_id" not in reply:
            raise SubmitterError(str(reply.get("error", f"an answer without a job id: {reply}")))
        return str(reply["job_id"])
    raise SubmitterError(f"the warm submitter left {TRIES} times before it took the request; see {log}")


def _connected(settings: Settings) -> socket.socket:
    """A connection to the home's daemon, started first if none listens (one starter at a time)."""
    files = DaemonFiles.of(settings)
    with exclusive(files.lock):
        sock = _try_connect(files.socket)
        if sock is not None:
            return sock
        files.socket.unlink(missing_ok=True)
        process = _start(settings, files)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SubmitterError(f"the warm submitter exited at start ({process.returncode}); see {files.log}")
            if (sock := _try_connect(files.socket)) is not None:
                return sock
            time.sleep(0.1)
        raise SubmitterError(f"the warm submitter did not listen within {START_TIMEOUT_S:.0f}s; see {files.log}")


def _try_connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)  # a daemon whose backlog is full does not hold the lock forever
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def _start(settings: Settings, files: DaemonFiles) -> subprocess.Popen:
    """The daemon in a session of its own (its gateway JVM in its process group), outliving the caller."""
    files.log.parent.mkdir(parents=True, exist_ok=True)
    files.socket.parent.mkdir(parents=True, exist_ok=True)
    env = without_secrets(dict(os.environ) | client_home(settings).env())
    argv = [settings.python_executable, "-m", DAEMON_MODULE, "--socket", str(files.socket),
            "--pid-file", str(files.pid), "--lock-file", str(files.lock), "--idle-s", str(IDLE_S)]
    with open(files.log, "ab") as log:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))


def _exchange(sock: socket.socket, request: SubmitRequest, timeout_s: float) -> dict:
    """Send one request and read its one-line JSON reply (the daemon answers requests in turn). A reset
    connection or a broken pipe is raised as it came: the daemon closed without reading the request."""
    with sock, sock.makefile("rb") as replies:
        sock.settimeout(timeout_s)
        try:
            sock.sendall(request.to_line())
            line = replies.readline()
        except TimeoutError as exc:
            raise SubmitterError(f"the warm submitter did not answer within {timeout_s:.0f}s (a job it submits "
                                 f"once this caller is gone is cancelled)") from exc
        except LEFT_BEFORE_READING:
            raise
        except OSError as exc:
            raise SubmitterError(f"the warm submitter's connection failed: {exc}") from exc
    if not line:
        raise SubmitterError("the warm submitter closed the connection without an answer (its JVM did not "
                             "start, or it died); see its log")
    try:
        return json.loads(line)
    except ValueError as exc:
        raise SubmitterError(f"the warm submitter answered what is not JSON: {line[:200]!r}") from exc


def stop_daemon(settings: Settings, timeout_s: float = 15.0) -> bool:
    """Stop the home's daemon and its JVM (SIGTERM to its process group, SIGKILL after ``timeout_s``).
    False when none ran. The pid is trusted only while its command line names this home's pid file."""
    files = DaemonFiles.of(settings)
    with exclusive(files.lock):  # no submission starts a daemon meanwhile
        pid = _daemon_pid(files.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL) if pid is not None else ():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if not _alive(pid):
                break
        files.pid.unlink(missing_ok=True)
        with contextlib.suppress(SubmitterError):  # a socket folder that is not ours: nothing of ours there
            files.socket.unlink(missing_ok=True)
    return pid is not None


def _daemon_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if DAEMON_MODULE.encode() in cmdline and os.fsencode(pid_file) in cmdline else None


def _alive(pid: int) -> bool:
    """Running and not a zombie (the daemon is reaped by its parent, which may be us or init)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
