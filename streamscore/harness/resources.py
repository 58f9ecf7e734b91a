"""What a long run costs over time: the resident memory of the broker, the JobManager, the TaskManagers
and the Python workers, and the size of the scoring job's checkpoints, sampled every few seconds.

A leak shows as a slope: ``summary`` fits a line through each group's samples (after a warm-up)
and reports it in MiB per minute beside the first, last and largest value. A TaskManager killed
by a fault comes back small, so its slope is read with the fault times in mind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import psutil

from streamscore.foundation.config import Settings

GROUPS = ("kafka", "jobmanager", "taskmanagers", "python_workers")


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def _pids(settings: Settings) -> dict[str, list[int]]:
    """The local stack's processes by group (Python workers: the TaskManagers' PyFlink worker children)."""
    from streamscore.stack import Stack, _specs
    from streamscore.stack.process import running_pid

    stack = Stack(settings)
    specs = _specs(stack.service("flink"))  # the JobManager, then every TaskManager
    managers = [pid for pid in (running_pid(s) for s in specs[1:]) if pid]
    workers = []
    for pid in managers:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        workers += [c.pid for c in children if _is_python_worker(c)]
    kafka = [pid for pid in (running_pid(s) for s in _specs(stack.service("kafka"))) if pid]
    jobmanager = [pid for pid in [running_pid(specs[0])] if pid]
    return {"kafka": kafka, "jobmanager": jobmanager, "taskmanagers": managers, "python_workers": workers}


def _is_python_worker(process: psutil.Process) -> bool:
    try:
        return any("pyflink.fn_execution" in part for part in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _checkpoint_bytes(settings: Settings, job_id: str) -> int | None:
    """The size of the job's latest completed checkpoint, as Flink's REST API reports it."""
    from jobs.flink_cluster import FlinkJobError, rest

    try:
        latest = (rest(settings, f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("completed") or {}
    except FlinkJobError:
        return None
    size = latest.get("checkpointed_size", latest.get("state_size"))
    return int(size) if size is not None else None


class ResourceSampler(threading.Thread):
    """Samples every ``every_s`` seconds until stopped; ``job_id`` is asked each time (a savepoint
    restart replaces the job)."""

    def __init__(self, settings: Settings, job_id: Callable[[], str], every_s: float = 5.0):
        super().__init__(daemon=True)
        self.settings, self.job_id, self.every_s = settings, job_id, every_s
        self.samples: list[tuple[float, dict[str, float], int | None]] = []
        self.stop_event = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        self.began = time.monotonic()
        while not self.stop_event.is_set():
            pids = _pids(self.settings)
            rss = {group: _rss_mib(pids[group]) for group in GROUPS}
            self.samples.append((time.monotonic() - self.began, rss, _checkpoint_bytes(self.settings, self.job_id())))
            self.stop_event.wait(self.every_s)

    def max_since(self, start_s: float) -> dict[str, float]:
        """The largest RSS (MiB) per group sampled from ``start_s`` (seconds since it began) on."""
        kept = [rss for t, rss, _ in list(self.samples) if t >= start_s]
        return {group: round(max(rss[group] for rss in kept), 1) for group in GROUPS} if kept else {}

    def stop(self) -> dict:
        self.stop_event.set()
        self.join(30)
        return summary(self.samples)


def summary(samples: list[tuple[float, dict[str, float], int | None]], warmup: float = 0.1) -> dict:
    """Per group: first, last and largest RSS (MiB) and the slope of a line fitted through the samples
    after the first ``warmup`` share of the run (MiB per minute); the checkpoint sizes seen (bytes)."""
    if not samples:
        return {}
    kept = samples[int(len(samples) * warmup):] or samples
    minutes = np.array([t for t, _, _ in kept]) / 60.0
    out: dict = {"samples": len(samples), "minutes": round(samples[-1][0] / 60.0, 2)}
    for group in GROUPS:
        values = np.array([rss[group] for _, rss, _ in kept])
        slope = float(np.polyfit(minutes, values, 1)[0]) if len(kept) >= 3 and np.ptp(minutes) > 0 else 0.0
        out[group] = {"first_mib": round(float(values[0]), 1), "last_mib": round(float(values[-1]), 1),
                      "max_mib": round(float(values.max()), 1), "slope_mib_per_min": round(slope, 2)}
    sizes = [size for _, _, size in samples if size is not None]
    if sizes:
        out["checkpoint_bytes"] = {"first": sizes[0], "last": sizes[-1], "median": int(np.median(sizes)),
                                   "max": max(sizes)}
    return out
