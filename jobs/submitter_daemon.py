"""The warm submitter: one PyFlink gateway JVM that plans and submits every job of a stack home.

Run by :mod:`jobs.submitter_client` as ``python -m jobs.submitter_daemon --socket S --pid-file P``, never by
hand. For each request it does what ``flink run -d -m REST [-s SAVEPOINT] -pyexec PYTHON -py SCRIPT ARGS``
does: it sets a remote context environment in the JVM (the home's config.yaml, then the target, REST
address, detached, the workers' Python and the savepoint), runs the job script as ``__main__`` (so its
functions are pickled by value, as under ``flink run``), reads the job id it prints, and unsets the context.
Requests are served one at a time. It exits after ``--idle-s`` without one, or when the project's Python
code has changed since it started (it answers ``{"restart": true}`` and the client starts a fresh one).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import runpy
import select
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from jobs.flink_cluster import JOB_ID_PATTERN, FlinkJobError, ask_cancel_at, failure_cause
from jobs.planning_watchdog import PLAN_LIMIT_S, PlanningWatchdog, cancel_unreported_job
from jobs.submitter_client import SubmitRequest
from streamscore.foundation.locks import exclusive

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CODE_PACKAGES = ("jobs", "connectors", "schemas", "models", "drift", "streamscore")
CODE_SUFFIXES = (".py", ".avsc")


def code_fingerprint(root: Path = PROJECT_ROOT) -> tuple[tuple[str, int, int], ...]:
    """Name, size and mtime of every Python file (and Avro schema) of the project's packages: planning runs
    this code, so a daemon whose fingerprint no longer matches the files on disk would plan with stale code."""
    files = sorted(path for package in CODE_PACKAGES for path in (root / package).rglob("*")
                   if path.suffix in CODE_SUFFIXES)
    return tuple((str(path), *_size_and_mtime(path)) for path in files)


def _size_and_mtime(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


class WarmPlanner:
    """The gateway JVM and what each submission sets in it."""

    def __init__(self) -> None:
        import pyflink.java_gateway as java_gateway

        launch, launched = java_gateway.launch_gateway_server_process, []

        def launch_draining_stderr(env, args):  # PyFlink pipes the JVM's stderr and never reads it: a
            process = launch(env, args)  # long-lived JVM would block once the pipe is full
            threading.Thread(target=_copy_lines, args=(process.stderr,), daemon=True).start()
            launched.append(process)
            return process

        java_gateway.launch_gateway_server_process = launch_draining_stderr
        self.jvm = java_gateway.get_gateway().jvm
        self.gateway_process = launched[0] if launched else None
        self.jvm_stopped = False
        self.python_jar = next((Path(os.environ["FLINK_HOME"]) / "opt").glob("flink-python*.jar")).as_uri()
        self.thread = self.jvm.java.lang.Thread.currentThread()
        self.class_loader = self.thread.getContextClassLoader()

    def alive(self) -> bool:
        """Whether the gateway JVM still runs (killed, or out of memory, it answers nothing again)."""
        return not self.jvm_stopped and (self.gateway_process is None or self.gateway_process.poll() is None)

    def stop_jvm(self) -> None:
        """Kill the gateway JVM: a call stuck in it fails, and the daemon leaves once it has answered."""
        self.jvm_stopped = True  # at once: poll() may not see the kill until the process is reaped
        if self.gateway_process is not None:
            self.gateway_process.kill()

    def submit(self, request: SubmitRequest) -> str:
        context = self.jvm.org.apache.flink.client.program.StreamContextEnvironment
        context.setAsContext(self.jvm.org.apache.flink.core.execution.DefaultExecutorServiceLoader(),
                             self._configuration(request), self.class_loader, False, False)
        printed = io.StringIO()
        try:
            with _job_environment(request), contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                runpy.run_path(request.script, run_name="__main__")
        except SystemExit as exc:  # argparse's refusal, say: its message is the last line it printed
            if exc.code not in (0, None):
                lines = printed.getvalue().strip().splitlines() or ["(nothing printed)"]
                raise RuntimeError(f"{Path(request.script).name} exited ({exc.code}): {lines[-1]}") from exc
        finally:
            context.unsetAsContext()
            self.thread.setContextClassLoader(self.class_loader)  # PyFlink adds each job's jars on top
        match = JOB_ID_PATTERN.search(printed.getvalue())
        if not match:
            raise RuntimeError(f"{Path(request.script).name} printed no job id: {printed.getvalue()[-300:]!r}")
        return match.group(1)

    def _configuration(self, request: SubmitRequest):
        conf_module = self.jvm.org.apache.flink.configuration
        home_config = conf_module.GlobalConfiguration.loadConfiguration(os.environ["FLINK_CONF_DIR"])
        conf = conf_module.Configuration(home_config)
        host, _, port = request.rest.rpartition(":")
        settings = {"execution.target": "remote", "rest.address": host, "rest.port": port,
                    "execution.attached": "false", "python.executable": request.python,
                    "pipeline.jars": self.python_jar}  # as `flink run -py` ships it; the job's own jars join it
        if request.savepoint:
            settings["execution.state-recovery.path"] = request.savepoint
        for key, value in settings.items():
            conf.setString(key, value)
        return conf


@contextlib.contextmanager
def _job_environment(request: SubmitRequest) -> Iterator[None]:
    """The script's argv, and the caller's environment and working directory, as ``flink run`` gives its
    driver; the daemon's own are back afterwards."""
    saved_argv, saved_env, saved_cwd = sys.argv, dict(os.environ), os.getcwd()
    sys.argv = [request.script, *request.args]
    if request.env:
        os.environ.clear()
        os.environ.update(dict(request.env))
    try:
        if request.cwd:
            os.chdir(request.cwd)
        yield
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _copy_lines(stream) -> None:
    for line in iter(stream.readline, b""):
        sys.__stdout__.write(line.decode(errors="replace"))
        sys.__stdout__.flush()


def answer(planner: WarmPlanner, line: bytes, fingerprint, plan_limit_s: float = PLAN_LIMIT_S) -> dict:
    """The reply to one request line: ``restart`` (the daemon then leaves, the client starts a fresh one)
    when the code changed, the gateway JVM died or the job is another checkout's (two checkouts that share a
    stack home: planning imports this checkout's modules)."""
    if code_fingerprint() != fingerprint or not planner.alive():  # before parsing: a newer client's request
        return {"restart": True}  # may not parse in stale code
    try:
        request = SubmitRequest.from_json(line.decode())
    except Exception as exc:  # noqa: BLE001 - a garbled request is the client's answer too
        return {"error": one_line(exc)}
    if _is_another_checkouts_job(request.script):
        return {"restart": True}
    return _plan(planner, request, plan_limit_s)


def _plan(planner: WarmPlanner, request: SubmitRequest, limit_s: float) -> dict:
    """The job id, or the failure in one line; a planning past ``limit_s`` is stopped (jobs.planning_watchdog)."""
    began_ms = int(time.time() * 1000)
    with PlanningWatchdog(planner, limit_s) as watchdog:
        try:
            return {"job_id": planner.submit(request)}
        except Exception as exc:  # noqa: BLE001 - a job's failure is the client's answer, not the daemon's end
            if not watchdog.expired:
                return {"error": one_line(exc)}
            failure = one_line(exc)
    return {"error": f"planning took longer than {limit_s:.0f} s: the warm submitter stopped its JVM "
                     f"({failure}); {cancel_unreported_job(request, began_ms)}; the next submission starts afresh"}


def _is_another_checkouts_job(script: str) -> bool:
    """Whether ``script`` is a job of another checkout of the project (``<root>/jobs/<name>.py``)."""
    path = Path(script).resolve()
    return path.parent.name == "jobs" and (path.parent / "submitter_daemon.py").exists() \
        and path.parent.parent != PROJECT_ROOT


def one_line(exc: Exception) -> str:
    """What went wrong, in one line: a Java failure's deepest cause (py4j's own message names only the call),
    else the telling line of the traceback, as ``flink run``'s output is read."""
    java = getattr(exc, "java_exception", None)
    if java is None:
        return failure_cause("".join(traceback.format_exception(exc)))
    while java.getCause() is not None:
        java = java.getCause()
    return str(java.toString()).splitlines()[0][:500]


# Each planning loads its job's jars in a class loader of its own that the gateway JVM keeps: metaspace grew
# 75 -> 199 MB and RSS 444 -> 671 MB over a suite's 48 plannings (docs/testing.md). A daemon retires after
# this many jobs (its next caller starts a fresh one, ~8 s), so a long busy session stays bounded.
MAX_JOBS = 40


def serve(listener: socket.socket, planner: WarmPlanner, idle_s: float, fingerprint, max_jobs: int = MAX_JOBS) -> None:
    """Answer requests in turn until ``idle_s`` passes without one, the code changes, the JVM is gone or
    ``max_jobs`` jobs were submitted."""
    listener.settimeout(idle_s)
    submitted = 0
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return
        with conn, conn.makefile("rb") as lines:
            conn.settimeout(30.0)
            with contextlib.suppress(OSError):
                line = lines.readline()
                if _caller_gone(conn):  # gave up while queued: its job is not submitted
                    continue
                reply = answer(planner, line, fingerprint) if _same_user(conn) else {
                    "error": "the warm submitter serves only the user it runs as"}
                _deliver(conn, reply, line)
                submitted += "job_id" in reply
                if reply.get("restart") or not planner.alive() or submitted >= max_jobs:
                    return  # queued callers go to a fresh daemon


def _caller_gone(conn: socket.socket) -> bool:
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""


def _deliver(conn: socket.socket, reply: dict, line: bytes) -> None:
    """Send the reply; a job whose caller is gone by then (it timed out, or was interrupted) is cancelled,
    never left running unknown to anyone."""
    try:
        conn.sendall((json.dumps(reply) + "\n").encode())
    except OSError:
        if "job_id" in reply:
            with contextlib.suppress(FlinkJobError):
                ask_cancel_at(SubmitRequest.from_json(line.decode()).rest, reply["job_id"])
                print(f"cancelled {reply['job_id']}: its caller was gone", flush=True)
        raise


def _same_user(conn: socket.socket) -> bool:
    """A request runs a script as this process's user: only that user's processes may send one (the socket
    is 0600 too)."""
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                          struct.calcsize("3i")))
    return uid == os.getuid()


def main(argv: list[str] | None = None) -> None:
    fingerprint = code_fingerprint()  # before anything is imported or planned
    parser = argparse.ArgumentParser(prog="submitter_daemon")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--pid-file", required=True)
    parser.add_argument("--lock-file", required=True)
    parser.add_argument("--idle-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    Path(args.pid_file).write_text(f"{os.getpid()}\n")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(args.socket)  # first, so clients queue while the gateway JVM starts
        os.chmod(args.socket, 0o600)
        listener.listen(16)
        serve(listener, WarmPlanner(), args.idle_s, fingerprint)
    finally:
        with exclusive(Path(args.lock_file)):  # no client starts a successor meanwhile
            listener.close()
            with contextlib.suppress(OSError):
                if Path(args.pid_file).read_text().strip() == str(os.getpid()):
                    Path(args.pid_file).unlink()
                    Path(args.socket).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
