"""Processes the stack starts: launched detached, tracked by pid file, stopped only if still ours."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamscore.foundation.errors import StackError


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one service process."""

    name: str
    argv: Sequence[str]
    log_file: Path
    pid_file: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); with the pid, a unique identity."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":  # a zombie is not alive
        return None
    return int(fields[19])


def read_pid_file(pid_file: Path) -> tuple[int, int] | None:
    try:
        pid, ticks = pid_file.read_text().split()
        return int(pid), int(ticks)
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    return process_start_ticks(pid) is not None


def running_pid(spec: ProcessSpec) -> int | None:
    """The pid we started for ``spec`` if that very process still runs (pid reuse cannot fool it)."""
    recorded = read_pid_file(spec.pid_file)
    if recorded is None:
        return None
    pid, ticks = recorded
    return pid if process_start_ticks(pid) == ticks else None


def start_process(spec: ProcessSpec) -> int:
    """Start the process detached (own session), output appended to its log; write its pid file."""
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(spec.env or {})
    with open(spec.log_file, "ab") as log:
        log.write(f"\n==== streamscore: starting {spec.name} at {time.ctime()} ====\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(spec.argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=spec.cwd, start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{spec.name}: cannot run {spec.argv[0]!r} ({exc.strerror})") from exc
    spec.pid_file.write_text(f"{proc.pid} {process_start_ticks(proc.pid)}\n")
    return proc.pid


def stop_process(spec: ProcessSpec, timeout_s: float = 30.0) -> bool:
    """SIGTERM the process group we started, SIGKILL after timeout. False if nothing of ours ran."""
    pid = running_pid(spec)
    if pid is None:
        spec.pid_file.unlink(missing_ok=True)
        return False
    children = descendants(pid)  # e.g. Flink's Python workers, which may outlive their TaskManager
    _signal_group(pid, signal.SIGTERM)
    if not wait_for(lambda: not pid_alive(pid), timeout_s):
        _signal_group(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), 10.0)
    _reap(pid)
    _kill_leftovers(children)
    spec.pid_file.unlink(missing_ok=True)
    return True


def _kill_leftovers(children: list[tuple[int, int | None]]) -> None:
    """SIGKILL what the process started and left behind (checked by start time: never a reused pid)."""
    for child, ticks in children:
        if ticks is not None and process_start_ticks(child) == ticks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def kill_processes_with_env(entry: str) -> int:
    """SIGKILL every process whose environment holds ``entry`` exactly (e.g. the Python workers of a
    crashed TaskManager, which carry its FLINK_CONF_DIR). Returns how many were killed."""
    wanted, killed = entry.encode(), 0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in env:
            try:
                os.kill(int(name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def descendants(pid: int) -> list[tuple[int, int | None]]:
    """(pid, start ticks) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append((child, process_start_ticks(child)))
            todo.append(child)
    return found


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: pgid == pid
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.25,
             propagate: tuple[type[BaseException], ...] = ()) -> bool:
    """Poll ``check`` until it returns True or the timeout passes.

    A probe that raises means "not yet", except for the exception types in ``propagate``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return True
        except propagate:
            raise
        except Exception:  # noqa: BLE001 - not answering yet: try again until the deadline
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file ('' when it does not exist)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
