"""CPU seconds and peak RSS of every process involved, sampled with psutil every 200 ms.

Roles: ``kafka`` (the broker), ``flink-jm``, ``flink-tm``, ``python-workers`` (every descendant
of the TaskManager: the Beam/PyFlink Python workers), ``loop`` (a benchmark's own worker
process and its children). CPU is user + system time; a role's CPU over a window is the sum
over its processes of (CPU at the window's end - CPU at its start), a process born inside the
window counting from 0. RSS of a role is the sum over its processes at one sample; its peak
is the largest such sum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

RolePids = Callable[[], dict[str, list[int]]]


@dataclass
class _Series:
    cpu: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # pid -> [(t, cpu s)]
    rss_peak: float = 0.0


class ProcessSampler(threading.Thread):
    def __init__(self, role_pids: RolePids, interval_s: float = 0.2):
        super().__init__(daemon=True, name="bench-procstats")
        self.role_pids, self.interval_s = role_pids, interval_s
        self.series: dict[str, _Series] = {}
        self.stop_event = threading.Event()
        self._procs: dict[int, psutil.Process] = {}
        self.born: dict[int, float] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval_s)
        self.sample()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(5)

    def sample(self) -> None:
        now = time.time()
        try:
            roles = self.role_pids()
        except (psutil.Error, OSError):
            return
        for role, pids in roles.items():
            series = self.series.setdefault(role, _Series())
            rss = 0
            for pid in pids:
                reading = self._read(pid)
                if reading is None:
                    continue
                cpu, mem = reading
                series.cpu.setdefault(pid, []).append((now, cpu))
                rss += mem
            series.rss_peak = max(series.rss_peak, rss / 2**20)

    def _read(self, pid: int) -> tuple[float, int] | None:
        try:
            proc = self._procs.get(pid)
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
                self.born[pid] = proc.create_time()
            with proc.oneshot():
                times, mem = proc.cpu_times(), proc.memory_info()
            return times.user + times.system, mem.rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return None

    def cpu_seconds(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per role between two wall-clock times."""
        return {role: sum(_at(points, end, self.born[pid]) - _at(points, start, self.born[pid])
                          for pid, points in s.cpu.items())
                for role, s in self.series.items()}

    def peak_rss_mb(self) -> dict[str, float]:
        return {role: s.rss_peak for role, s in self.series.items()}


def _at(points: list[tuple[float, float]], t: float, born: float) -> float:
    """CPU seconds at time ``t``: the last sample at or before it, or, after the last sample, the
    last value (the process ended). Before the first sample: 0 if the process was born after
    ``t``, else the first sample (the sampler starts before the systems, so this is rare)."""
    if t < points[0][0]:
        return 0.0 if born >= t else points[0][1]
    value = 0.0
    for when, cpu in points:
        if when > t:
            break
        value = cpu
    return value


def descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def stack_roles(stack_pids: dict[str, tuple[int, ...]], *, flink: bool, loop_pid: Callable[[], int | None]) -> RolePids:
    """A role -> pids function for one system: the broker always, Flink when it runs the system,
    the worker process once ``loop_pid()`` names it."""
    kafka = list(stack_pids.get("kafka", ()))
    jm_tm = list(stack_pids.get("flink", ()))

    def roles() -> dict[str, list[int]]:
        out = {"kafka": kafka}
        if flink and len(jm_tm) == 2:
            out.update({"flink-jm": [jm_tm[0]], "flink-tm": [jm_tm[1]], "python-workers": descendants(jm_tm[1])})
        pid = loop_pid()
        if pid is not None:
            out["loop"] = [pid, *descendants(pid)]
        return out

    return roles
