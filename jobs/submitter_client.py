"""Submit a PyFlink job through the stack's warm client JVM (``STREAMSCORE_FLINK_SUBMITTER=daemon``).

``flink run`` starts a client JVM for each submission, and a PyFlink job planned in a cold JVM takes
8-14 s here, most of it class loading and interpretation; planned in a JVM that has planned one before,
the same job takes ~2 s. With the daemon submitter, the first submission from a stack home starts
``python -m jobs.submitter_daemon`` (one Python process and its PyFlink gateway JVM, in a session of its
own), and every submission from that home goes through it over a Unix socket in the home's run folder,
one at a time. It exits after ``IDLE_S`` without a request, when the project's code changes under it (the
request is then sent to a fresh one), or at ``streamscore stack down`` (:func:`stop_daemon`).

A request names the job's script, its arguments, the cluster's REST address, the workers' Python, a
savepoint and the path of the job's secrets file (never a password: see jobs/job_secrets.py).
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

IDLE_S = 900.0  # a daemon with no request for this long exits
START_TIMEOUT_S = 60.0
SOCKET_PATH_MAX = 100  # bytes; Linux allows 107 in sun_path
DAEMON_MODULE = "jobs.submitter_daemon"


class SubmitterError(StreamscoreError):
    """The warm submitter could not be started or reached, or refused the job (its one-line cause)."""


@dataclass(frozen=True)
class SubmitRequest:
    """One job to plan and submit detached: what ``flink run -d -m REST [-s SAVEPOINT] -pyexec PYTHON
    -py SCRIPT ARGS...`` says, and the job's secrets-file variable (jobs/job_secrets.py), if any."""

    script: str
    args: tuple[str, ...]
    rest: str
    python: str
    savepoint: str | None = None
    env: tuple[tuple[str, str], ...] = ()

    def to_line(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def from_json(cls, text: str) -> SubmitRequest:
        raw = json.loads(text)
        return cls(script=raw["script"], args=tuple(raw["args"]), rest=raw["rest"], python=raw["python"],
                   savepoint=raw.get("savepoint"), env=tuple((k, v) for k, v in raw.get("env", ())))


@dataclass(frozen=True)
class DaemonFiles:
    """Where a stack home's daemon listens, writes its pid and its log."""

    socket: Path
    pid: Path
    lock: Path
    log: Path

    @classmethod
    def of(cls, settings: Settings) -> DaemonFiles:
        run = settings.run_dir
        return cls(_socket_path(run), run / "flink-submitter.pid", run / "flink-submitter.lock",
                   settings.log_dir / "flink-submitter.log")


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


def submit_through_daemon(settings: Settings, request: SubmitRequest, timeout_s: float) -> str:
    """The submitted job's id; a daemon that left because the code changed is replaced once."""
    for _ in range(2):
        reply = _exchange(_connected(settings), request, timeout_s)
        if reply.get("restart"):
            continue
        if "error" in reply:
            raise SubmitterError(str(reply["error"]))
        return str(reply["job_id"])
    raise SubmitterError("the warm submitter restarted twice for one request (is the code changing?)")


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
            "--pid-file", str(files.pid), "--idle-s", str(IDLE_S)]
    with open(files.log, "ab") as log:
        return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=str(Path(__file__).resolve().parent.parent))


def _exchange(sock: socket.socket, request: SubmitRequest, timeout_s: float) -> dict:
    """Send one request and read its one-line JSON reply (the daemon answers requests in turn)."""
    with sock, sock.makefile("rb") as replies:
        sock.settimeout(timeout_s)
        try:
            sock.sendall(request.to_line())
            line = replies.readline()
        except TimeoutError as exc:
            raise SubmitterError(f"the warm submitter did not answer within {timeout_s:.0f}s") from exc
        except OSError as exc:
            raise SubmitterError(f"the warm submitter's connection failed: {exc}") from exc
    if not line:
        raise SubmitterError("the warm submitter closed the connection without an answer; see its log")
    return json.loads(line)


def stop_daemon(settings: Settings, timeout_s: float = 15.0) -> bool:
    """Stop the home's daemon and its JVM (SIGTERM to its process group, SIGKILL after ``timeout_s``).
    False when none ran. The pid is trusted only while its command line names the daemon's module."""
    files = DaemonFiles.of(settings)
    pid = _daemon_pid(files.pid)
    files.socket.unlink(missing_ok=True)
    if pid is None:
        files.pid.unlink(missing_ok=True)
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if not _alive(pid):
            break
    files.pid.unlink(missing_ok=True)
    return True


def _daemon_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if DAEMON_MODULE.encode() in cmdline else None


def _alive(pid: int) -> bool:
    """Running and not a zombie (the daemon is reaped by its parent, which may be us or init)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
