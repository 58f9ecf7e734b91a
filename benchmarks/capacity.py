"""The capacity table: how many cores a deployment needs, from the CPU per event measured at
parallelism 1, 2 and 4 in one run (the ``capacity-p*`` rows of ``streamscore bench``).

For each parallelism: events/s drained (median, min-max over the repetitions), the scoring job's
CPU per event (JobManager, TaskManager and its Python workers) and the broker's, events/s per job
core (1e6 / job us per event), and the job cores needed for 10k, 100k and 1M events/s at
``TARGET_UTILIZATION``. Assumptions, stated with the table: CPU per event stays what it was here as
TaskManagers are added (one subtask per input partition, no shared bottleneck but the brokers, which
are sized apart), the same model (the fraud trees, on the Confluent wire, decoded in the JVM), event size
and batching (2048, 100 ms, 4 batches per bundle), and no
drift sidecar (it reads the same topics: add its own cores).
"""

from __future__ import annotations

import statistics

TARGET_UTILIZATION = 0.6  # headroom: at 60 % a 30 s stall's backlog drains in 45 s
RATES = (10_000, 100_000, 1_000_000)
JOB_ROLES = ("flink-jm", "flink-tm", "python-workers")


def _us_per_event(row: dict, roles: tuple[str, ...]) -> float | None:
    events = row.get("drain_measured_events")
    cpu = row.get("cpu_s_by_role") or {}
    if not events or not any(role in cpu for role in roles):
        return None
    return sum(cpu.get(role, 0.0) for role in roles) / events * 1e6


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def capacity(rows: list[dict]) -> list[dict]:
    """One entry per capacity row (in parallelism order) from the run's valid rows."""
    out = []
    for key in sorted({r["system"] for r in rows if r.get("group") == "capacity"},
                      key=lambda k: int(k.rsplit("p", 1)[1])):
        valid = [r for r in rows if r["system"] == key and not r.get("void") and not r.get("error")]
        rates = [r["events_per_s"] for r in valid if r.get("events_per_s")]
        job_us = _median([_us_per_event(r, JOB_ROLES) for r in valid])
        entry = {"system": key, "parallelism": int(key.rsplit("p", 1)[1]), "runs": len(valid),
                 "events_per_s": {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
                 if rates else None,
                 "job_us_per_event": job_us, "broker_us_per_event": _median([_us_per_event(r, ("kafka",))
                                                                             for r in valid])}
        if job_us:
            entry["events_per_s_per_job_core"] = 1e6 / job_us
            entry["job_cores_for"] = {str(rate): rate * job_us / 1e6 / TARGET_UTILIZATION for rate in RATES}
        out.append(entry)
    return out


def markdown(entries: list[dict]) -> str:
    if not entries:
        return ""
    rates = " | ".join(f"job cores for {rate:,}/s" for rate in RATES)
    lines = [f"| parallelism | events/s median (min-max) | job CPU us/event | broker CPU us/event | "
             f"events/s per job core | {rates} |", "|---" * (5 + len(RATES)) + "|"]
    for e in entries:
        ev = e["events_per_s"]
        rate = f"{ev['median']:,.0f} ({ev['min']:,.0f}-{ev['max']:,.0f})" if ev else "void"
        cores = " | ".join(f"{e['job_cores_for'][str(r)]:,.1f}" if "job_cores_for" in e else "-" for r in RATES)
        per_core = f"{e['events_per_s_per_job_core']:,.0f}" if "events_per_s_per_job_core" in e else "-"
        job = f"{e['job_us_per_event']:.1f}" if e["job_us_per_event"] else "-"
        broker = f"{e['broker_us_per_event']:.1f}" if e["broker_us_per_event"] else "-"
        lines.append(f"| {e['parallelism']} | {rate} | {job} | {broker} | {per_core} | {cores} |")
    lines.append(f"\nJob cores at {TARGET_UTILIZATION:.0%} utilization; brokers and the drift sidecar are sized "
                 f"apart (benchmarks/capacity.py states the assumptions).")
    return "\n".join(lines)
