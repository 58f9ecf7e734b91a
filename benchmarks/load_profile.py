"""Where the CPU goes at a fixed load: one Flink row of the benchmark on the running stack, warmed up, then fed
open-loop at a fixed rate; over 35-85 % of the send, the CPU of each process (microseconds per event), of the
TaskManager's threads, and (py-spy, in the ``bench`` extra) the share of the Python worker's busy samples in
each function.

    python -m benchmarks.load_profile --system wire-jvm-alo --rate 50000 [--seconds 30] [--repetitions 3]

Every id sent must come out once (scored or dead-lettered), the sender must keep to its schedule and the
window must be measured, or the repetition is void (with its reason). Results:
``benchmarks/results/load-profile-<UTC time>.json`` and a table on stdout (medians, min-max). On a cluster
just started the first repetition still carries the JIT compiler's work (the TaskManager's ``C2 CompilerThread``
in its threads): read it against the others, or run once before.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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

from benchmarks import system_specs, systems
from benchmarks.feed import EventPool, preload, send_open_loop_apart
from benchmarks.options import RESULTS
from benchmarks.procstats import ProcessSampler, RolePids, stack_roles
from benchmarks.sink import SinkCollector, account
from connectors.kafka_clients import create_topics, delete_topics
from jobs.scoring_config import DEFAULT_BOUND_BATCH
from streamscore.foundation.config import Settings, TopicSpec, load_settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.stack import Stack

WARM_UP_EVENTS = 200_000  # drained before the send: the job's JVM compiles its hot code on these, not in the window
CHECKPOINT_MS = 1000  # the benchmark's commit/checkpoint interval
MAX_SENDER_LAG_MS = 500.0  # a sender further behind its schedule did not send at the rate the CPU is divided by
MIN_SECONDS = 10.0
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]*)(?::\d+)?\)$")


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
            out[task.name] = (name, int(fields[11]) + int(fields[12]))  # utime, stime (stat fields 14, 15)
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return out


def thread_cores(before: dict, after: dict, seconds: float, top: int = 8) -> dict[str, float]:
    """Cores used by each thread name (digits folded, so a pool counts once) between two ``thread_ticks``."""
    ticks: Counter[str] = Counter()
    for tid, (name, used) in after.items():
        ticks[re.sub(r"\d+", "N", name)] += used - before.get(tid, (name, 0))[1]
    hz = os.sysconf("SC_CLK_TCK")
    return {name: round(t / hz / seconds, 3) for name, t in ticks.most_common(top) if t > 0}


def frame_name(frame: str) -> str:
    """``function (file)`` of a py-spy frame ``function (file:line)``."""
    match = _FRAME.match(frame)
    return f"{match['function']} ({match['file']})" if match else frame


def py_spy_top(folded: Path, top: int = 40) -> dict[str, float]:
    """Share of py-spy's samples (raw, folded stacks) in which each function appears."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for function in {frame_name(frame) for frame in stack.split(";")}:
            inclusive[function] += int(count)
    return {function: round(n / total, 3) for function, n in inclusive.most_common(top)} if total else {}


def us_per_event(cpu_seconds: dict[str, float], events: float) -> dict[str, float]:
    """Each role's CPU seconds over the window, in microseconds per event."""
    return {role: round(used / events * 1e6, 2) for role, used in cpu_seconds.items()}


def _role_pids(settings: Settings) -> RolePids:
    """The stack's processes by role (the Python workers looked up at each call), or a one-line refusal."""
    pids = {h.service: h.pids for h in Stack(settings).status()}
    if len(pids.get("flink", ())) != 2 or not pids.get("kafka"):
        raise ProfileError("the local stack's Kafka and Flink (JobManager and TaskManager) must be running: "
                           "streamscore stack up")
    return stack_roles(pids, flink=True, loop_pid=lambda: None)


def _busiest(series) -> int | None:
    """The pid of a role's series that has used the most CPU (the Python worker among its launcher processes)."""
    return max(series.cpu, key=lambda pid: series.cpu[pid][-1][1]) if series and series.cpu else None


class PySpy:
    """py-spy recording a process for a while into a folded file (the py-spy beside this interpreter first)."""

    def __init__(self, pid: int, seconds: float, folder: Path):
        beside = Path(sys.executable).parent / "py-spy"
        spy = str(beside) if beside.exists() else shutil.which("py-spy")
        self.folded, self.log = folder / "worker.folded", folder / "py-spy.log"
        self.seconds = seconds
        self.process = None if spy is None else subprocess.Popen(
            [spy, "record", "-p", str(pid), "-r", "100", "-d", str(int(seconds)), "--format", "raw",
             "-o", str(self.folded), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=self.log.open("w"))

    def functions(self) -> dict[str, float | str]:
        if self.process is None:
            return {"py-spy": "not found (pip install py-spy, or the bench extra)"}
        try:
            code = self.process.wait(timeout=self.seconds + 30)
        except subprocess.TimeoutExpired:
            return {"py-spy": "did not finish"}
        if code != 0 or not self.folded.exists():
            return {"py-spy": f"exit {code}: {self.log.read_text()[-300:]}"}
        return py_spy_top(self.folded)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def measure_window(settings: Settings, plan: LoadPlan, out: dict) -> None:
    """Wait for the window's start, then measure it into ``out`` (its error, if it fails)."""
    try:
        time.sleep(plan.seconds * plan.window[0])
        span = plan.seconds * (plan.window[1] - plan.window[0])
        role_pids = _role_pids(settings)
        sampler = ProcessSampler(role_pids)  # the benchmark's own per-role CPU sampler
        sampler.sample()
        tm, worker = role_pids()["flink-tm"][0], _busiest(sampler.series.get("python-workers"))
        with tempfile.TemporaryDirectory() as folder:
            spy = PySpy(worker, span, Path(folder)) if worker else None
            try:
                sampler.start()
                threads0, start = thread_ticks(tm), time.time()
                time.sleep(span)
                end = time.time()
                sampler.stop()
                out["us_per_event"] = us_per_event(sampler.cpu_seconds(start, end), plan.rate * (end - start))
                out["taskmanager_thread_cores"] = thread_cores(threads0, thread_ticks(tm), end - start)
                out["python_worker_functions"] = spy.functions() if spy else {"py-spy": "no Python worker"}
            finally:
                if sampler.is_alive():
                    sampler.stop()
                if spy is not None:
                    spy.stop()
    except Exception as exc:  # noqa: BLE001 - the thread's failure becomes the run's recorded reason
        out["error"] = f"{type(exc).__name__}: {exc}"


def flink_row(key: str) -> system_specs.SystemSpec:
    """The benchmark's wire row ``key``, if Flink runs it (the profile reads the TaskManager)."""
    rows = {s.key: s for s in system_specs.wire_rows((DEFAULT_BOUND_BATCH,)) if s.kind.startswith("flink")}
    if key not in rows:
        raise ProfileError(f"unknown system {key!r}: one of {', '.join(sorted(rows))}")
    return rows[key]


def _send_and_measure(settings: Settings, plan: LoadPlan, topic: str, events, row: dict, nice: int) -> None:
    measurer = threading.Thread(target=measure_window, args=(settings, plan, row), daemon=True)
    measurer.start()
    sent = send_open_loop_apart(settings, topic, events, plan.rate, nice=nice)
    measurer.join(timeout=plan.seconds + 60)
    row["sender_max_lag_ms"], row["sender_nice"] = round(sent.max_lag_ms, 1), sent.nice
    if measurer.is_alive():
        row["error"] = "the window's measurement did not finish"


def void_reason(row: dict) -> str | None:
    """Why a repetition does not count, or None."""
    if row.get("error"):
        return row["error"]
    if row["lost"] or row["duplicated"]:
        return f"{row['lost']} lost, {row['duplicated']} duplicated"
    if row["sender_max_lag_ms"] > MAX_SENDER_LAG_MS:
        return f"the sender fell {row['sender_max_lag_ms']} ms behind its schedule"
    return None


def run_once(settings: Settings, plan: LoadPlan, pool: EventPool) -> dict:
    spec = flink_row(plan.system)
    system_specs.ensure_models([spec])
    tag = uuid.uuid4().hex[:8]
    topics = system_specs.Topics(f"profile-in-{tag}", f"profile-out-{tag}", f"profile-dead-{tag}")
    warm = pool.backlog(WARM_UP_EVENTS, model=spec.model, confluent=spec.confluent)
    events = pool.latency(int(plan.rate * plan.seconds), model=spec.model, confluent=spec.confluent)
    row, running, collector = {"system": plan.system, "rate": plan.rate, "seconds": plan.seconds,
                               "apparatus_nice": spec.apparatus_nice}, None, None
    try:
        create_topics(settings, [TopicSpec(r, n, spec.partitions) for r, n in
                                 zip(("events", "scored", "dead"), (topics.source, topics.scored, topics.dead))])
        collector = SinkCollector(settings, [topics.scored, topics.dead], {topics.scored, topics.dead},
                                  nice=spec.apparatus_nice)
        collector.start()
        preload(settings, topics.source, warm)
        running = systems.start(settings, spec, topics, CHECKPOINT_MS)
        if not collector.wait_for(len(warm), stall_s=60, timeout_s=180):
            raise ProfileError(f"{plan.system}: the warm-up backlog did not come out")
        _send_and_measure(settings, plan, topics.source, events, row, spec.apparatus_nice)
        collector.wait_for(len(warm) + len(events), stall_s=30, timeout_s=120)
    finally:
        if running is not None:
            systems.stop(settings, running)
        if collector is not None:
            collector.stop()
        delete_topics(settings, [topics.source, topics.scored, topics.dead])
    books = account(collector.arrivals, warm.ids() | events.ids(), topics.dead)
    row.update(lost=books.lost, duplicated=books.duplicates)
    row["void"] = void_reason(row)
    return row


def summary(rows: list[dict]) -> dict[str, str]:
    """Each role's CPU per event: median (min-max) over the repetitions that count."""
    clean = [r for r in rows if not r["void"]]
    roles = sorted({role for r in clean for role in r["us_per_event"]})
    out = {}
    for role in roles + (["total"] if clean else []):
        values = [sum(r["us_per_event"].values()) if role == "total" else r["us_per_event"][role] for r in clean]
        out[role] = f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"
    return out


def _repetition(settings: Settings, plan: LoadPlan, pool: EventPool) -> dict:
    try:
        return run_once(settings, plan, pool)
    except ProfileError as exc:
        return {"system": plan.system, "void": str(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="load_profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", default="wire-jvm-alo", help="a Flink row of the benchmark's wire rows")
    parser.add_argument("--rate", type=float, default=50_000.0, help="events/s sent, open loop")
    parser.add_argument("--seconds", type=float, default=30.0, help=f"of sending (>= {MIN_SECONDS:.0f})")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.seconds < MIN_SECONDS or args.rate <= 0:
        parser.error(f"--seconds must be >= {MIN_SECONDS:.0f} and --rate > 0")
    settings = load_settings()
    pool, plan = EventPool(settings), LoadPlan(flink_row(args.system).key, args.rate, args.seconds)
    _role_pids(settings)  # refuse at once when the stack is down
    rows = [_repetition(settings, plan, pool) for _ in range(args.repetitions)]
    result = {"plan": dataclasses.asdict(plan), "runs": rows, "us_per_event_median": summary(rows),
              "time": datetime.now(UTC).isoformat(timespec="seconds")}
    path = args.out / f"load-profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    for role, text in result["us_per_event_median"].items():
        print(f"{role:16} {text} us of CPU per event")
    for row in rows:
        if row["void"]:
            print(f"void: {row['void']}")
    print(f"wrote {path}")
    return 0 if not any(row["void"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
