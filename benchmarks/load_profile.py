"""Where the CPU goes at a fixed load: one Flink row of the benchmark on the running stack, warmed up, then fed
open-loop at a fixed rate; over the middle of the send, the CPU of each process (microseconds per event),
of the TaskManager's and the Python worker's threads, and (py-spy, in the ``bench`` extra) the share of the
worker's samples in each function.

    python -m benchmarks.load_profile --system wire-jvm-alo --rate 50000 [--seconds 30] [--repetitions 3]

Every id sent must come out once (scored or dead-lettered), or the repetition is void. Results:
``benchmarks/results/load-profile-<UTC time>.json`` and a table on stdout (medians, min-max).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from benchmarks import systems
from benchmarks.feed import EventPool, preload, send_open_loop_apart
from benchmarks.options import RESULTS
from benchmarks.procstats import descendants
from benchmarks.sink import SinkCollector, account
from connectors.kafka_clients import create_topics, delete_topics
from jobs.scoring_config import DEFAULT_BOUND_BATCH
from streamscore.foundation.config import Settings, TopicSpec, load_settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.stack import Stack

WARM_UP_EVENTS = 20_000


@dataclass(frozen=True)
class LoadPlan:
    system: str
    rate: float
    seconds: float
    window: tuple[float, float] = (0.35, 0.85)  # the measured part of the send, as fractions of it


class ProfileError(StreamscoreError):
    pass


def thread_ticks(pid: int) -> dict[str, tuple[str, int]]:
    """tid -> (thread name, user + system clock ticks) of a live process (Linux /proc)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[task.name] = (name, int(fields[11]) + int(fields[12]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def thread_cores(before: dict, after: dict, seconds: float, top: int = 8) -> dict[str, float]:
    """Cores used by each thread name (digits folded, so a pool counts once) between two ``thread_ticks``."""
    ticks: Counter[str] = Counter()
    for tid, (name, used) in after.items():
        ticks[re.sub(r"\d+", "N", name)] += used - before.get(tid, (name, 0))[1]
    hz = 100.0  # USER_HZ on Linux
    return {name: round(t / hz / seconds, 3) for name, t in ticks.most_common(top) if t > 0}


def py_spy_top(folded: Path, top: int = 40) -> dict[str, float]:
    """Share of py-spy's samples (raw, folded stacks) in which each function appears."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in {f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")" for f in stack.split(";")}:
            inclusive[frame] += int(count)
    return {frame: round(n / total, 3) for frame, n in inclusive.most_common(top)} if total else {}


def _roles(settings: Settings) -> dict[str, list[int]]:
    pids = {h.service: h.pids for h in Stack(settings).status()}
    jm, tm = pids["flink"]
    return {"kafka": list(pids["kafka"]), "flink-jm": [jm], "flink-tm": [tm], "python-workers": descendants(tm)}


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _py_spy(pid: int, seconds: float, folded: Path) -> subprocess.Popen | None:
    """py-spy recording ``pid`` for ``seconds`` into ``folded`` (the one beside this interpreter first)."""
    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        return None
    return subprocess.Popen([spy, "record", "-p", str(pid), "-r", "100", "-d", str(int(seconds)), "--format", "raw",
                             "-o", str(folded), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _cpu_seconds_of(pid: int) -> float:
    return _cpu_seconds([pid])


def _window(settings: Settings, plan: LoadPlan, out: dict) -> None:
    """Wait for the window's start, then measure it into ``out``."""
    time.sleep(plan.seconds * plan.window[0])
    span = plan.seconds * (plan.window[1] - plan.window[0])
    roles = _roles(settings)
    tm, workers = roles["flink-tm"][0], sorted(roles["python-workers"], key=_cpu_seconds_of, reverse=True)
    folded = Path(tempfile.mkdtemp()) / "worker.folded"
    recorder = _py_spy(workers[0], span, folded) if workers else None
    cpu0 = {role: _cpu_seconds(pids) for role, pids in roles.items()}
    threaded = {"flink-tm": tm, "python-worker": workers[0]} if workers else {"flink-tm": tm}
    threads0 = {name: thread_ticks(pid) for name, pid in threaded.items()}
    start = time.monotonic()
    time.sleep(span)
    seconds = time.monotonic() - start
    events = plan.rate * seconds
    out["us_per_event"] = {role: round((_cpu_seconds(pids) - cpu0[role]) / events * 1e6, 2)
                           for role, pids in roles.items()}
    out["thread_cores"] = {name: thread_cores(threads0[name], thread_ticks(pid), seconds)
                           for name, pid in threaded.items()}
    if recorder is not None:
        _, err = recorder.communicate(timeout=span + 30)
        out["python_worker_functions"] = py_spy_top(folded) if folded.exists() else {"py-spy failed": err[-300:]}


def flink_row(key: str) -> systems.SystemSpec:
    """The benchmark's wire row ``key``, if Flink runs it (the profile reads the TaskManager)."""
    rows = {s.key: s for s in systems.wire_rows((DEFAULT_BOUND_BATCH,)) if s.kind.startswith("flink")}
    if key not in rows:
        raise ProfileError(f"unknown system {key!r}: one of {', '.join(sorted(rows))}")
    return rows[key]


def run_once(settings: Settings, plan: LoadPlan, pool: EventPool) -> dict:
    spec = flink_row(plan.system)
    systems.ensure_models([spec])
    tag = uuid.uuid4().hex[:8]
    topics = systems.Topics(f"profile-in-{tag}", f"profile-out-{tag}", f"profile-dead-{tag}")
    create_topics(settings, [TopicSpec(r, n, spec.partitions) for r, n in
                             zip(("events", "scored", "dead"), (topics.source, topics.scored, topics.dead))])
    warm = pool.backlog(WARM_UP_EVENTS, model=spec.model, confluent=spec.confluent)
    events = pool.latency(int(plan.rate * plan.seconds), model=spec.model, confluent=spec.confluent)
    collector = SinkCollector(settings, [topics.scored, topics.dead], {topics.scored, topics.dead})
    collector.start()
    running, row = None, {"system": plan.system, "rate": plan.rate, "seconds": plan.seconds}
    try:
        preload(settings, topics.source, warm)
        running = systems.start(settings, spec, topics, 1000)
        if not collector.wait_for(len(warm), stall_s=60, timeout_s=180):
            raise ProfileError(f"{plan.system}: the warm-up backlog did not come out")
        measurer = threading.Thread(target=_window, args=(settings, plan, row), daemon=True)
        measurer.start()
        sent = send_open_loop_apart(settings, topics.source, events, plan.rate)
        measurer.join()
        row["sender_max_lag_ms"] = round(sent.max_lag_ms, 1)
        collector.wait_for(len(warm) + len(events), stall_s=30, timeout_s=120)
    finally:
        if running is not None:
            systems.stop(settings, running)
        collector.stop()
        delete_topics(settings, [topics.source, topics.scored, topics.dead])
    books = account(collector.arrivals, warm.ids() | events.ids(), topics.dead)
    row.update(lost=books.lost, duplicated=books.duplicates, void=not books.clean or "us_per_event" not in row)
    return row


def summary(rows: list[dict]) -> dict[str, str]:
    """Each role's CPU per event: median (min-max) over the clean repetitions."""
    clean = [r for r in rows if not r["void"]]
    roles = sorted({role for r in clean for role in r["us_per_event"]})
    out = {}
    for role in roles + (["total"] if clean else []):
        values = [sum(r["us_per_event"].values()) if role == "total" else r["us_per_event"][role] for r in clean]
        out[role] = f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="load_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="wire-jvm-alo", help="a Flink row of the benchmark's wire rows")
    parser.add_argument("--rate", type=float, default=50_000.0, help="events/s sent, open loop")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    settings = load_settings()
    pool = EventPool(settings)
    plan = LoadPlan(flink_row(args.system).key, args.rate, args.seconds)
    rows = [run_once(settings, plan, pool) for _ in range(args.repetitions)]
    result = {"plan": dataclasses.asdict(plan), "runs": rows, "us_per_event_median": summary(rows),
              "time": datetime.now(UTC).isoformat(timespec="seconds")}
    path = args.out / f"load-profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=1))
    for role, text in result["us_per_event_median"].items():
        print(f"{role:16} {text} us of CPU per event")
    print(f"wrote {path}")
    return 0 if all(not r["void"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
