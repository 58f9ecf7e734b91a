"""``streamscore bench``: every system side by side, interleaved, on the local stack.

    streamscore bench                 # the full run (3 repetitions; ~40 min on 2 cores)
    streamscore bench --smoke         # a few thousand events per system, 1 repetition (< 3 min)

Order: ONNX Runtime alone, then repetitions of (system A, B, C, ...), so slow drifts of a shared
machine hit every system alike. Results: a table on stdout, JSON and Markdown (and PNG plots
when matplotlib is installed) under ``benchmarks/results/``, and PASS/MISS lines for the targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import traceback
from dataclasses import dataclass

import psutil

from benchmarks import capacity, report, system_specs
from benchmarks.feed import EventPool
from benchmarks.limits import feature_matrix, onnx_rows
from benchmarks.measure import HALF_LOAD, RunParams, measure
from benchmarks.options import add_arguments
from benchmarks.system_specs import SystemSpec
from streamscore.foundation.config import Settings, load_settings
from streamscore.foundation.errors import ConfigError
from streamscore.stack import Stack

ONNX_BATCHES = (1, 8, 64, 256, 1024)


@dataclass(frozen=True)
class BenchPlan:
    repetitions: int
    target_drain_s: float
    min_backlog: int
    max_backlog: int
    latency_seconds: float
    latency_max_events: int
    onnx_seconds: float
    sweep_batches: tuple[int, ...]
    sweep_delays: tuple[int, ...]
    commit_interval_ms: int = 1000
    stall_s: float = 60.0
    extra_loads: tuple[float, ...] = ()  # latency phases after the half-load one (fractions of the drained rate)

    def backlog(self, rate: float) -> int:
        return int(min(self.max_backlog, max(self.min_backlog, rate * self.target_drain_s)))

    def run_params(self, rate: float, latency_seconds: float | None = None) -> RunParams:
        """One run of a system: a backlog sized for ``rate``, then the latency phases (the plan's; one phase of
        ``latency_seconds`` when given, as a warm-up runs)."""
        one_phase = latency_seconds is not None
        return RunParams(self.backlog(rate), latency_seconds if one_phase else self.latency_seconds,
                         self.latency_max_events, self.commit_interval_ms, self.stall_s,
                         () if one_phase else self.extra_loads)


# the latency phase: 10 s at up to 60,000 events/s (capped at 150,000 events before run 064614Z, a fast row's
# phase lasted ~3 s and its p99 was the top ~24 ms of arrivals: one checkpoint's burst set it)
FULL = BenchPlan(3, 10.0, 5_000, 600_000, 10.0, 600_000, 2.0, (1, 8, 64, 256, 1024), (10,))
SMOKE = BenchPlan(1, 0.0, 1_000, 1_000, 1.0, 1_000, 0.2, (), (), stall_s=45.0)  # no sweep: same runner as EO


def machine() -> dict:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    return {"cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "java": java[0] if java else "unknown",
            "platform": platform.platform(), "load_avg_at_start": os.getloadavg()}


def _stack_pids(settings: Settings) -> dict[str, tuple[int, ...]]:
    return {h.service: h.pids for h in Stack(settings).status()}


def run_onnx(pool: EventPool, plan: BenchPlan) -> dict[int, dict]:
    matrix = feature_matrix(pool.backlog(4096).values)
    reps = [onnx_rows(matrix, ONNX_BATCHES, plan.onnx_seconds) for _ in range(plan.repetitions)]
    return {b: {"min": min(r[b] for r in reps), "median": statistics.median(r[b] for r in reps),
                "max": max(r[b] for r in reps), "n": len(reps)} for b in ONNX_BATCHES}


WARM_UP_RUNS = 6  # a fresh cluster's extra CPU per event had faded by its fifth Flink job (runs 211603Z, 213257Z)


def warm_up_specs(specs: list[SystemSpec]) -> list[SystemSpec]:
    """The run's first Flink system of each shape (runner, decoder, framing, delivery), at most WARM_UP_RUNS."""
    shapes: dict[tuple, SystemSpec] = {}
    for spec in specs:
        if spec.kind.startswith("flink"):
            shapes.setdefault((spec.kind, spec.decoder, spec.framing, spec.exactly_once), spec)
    return list(shapes.values())[:WARM_UP_RUNS]


def warm_up(settings: Settings, plan: BenchPlan, specs: list[SystemSpec], pool: EventPool) -> list[str]:
    """Unmeasured runs before the first repetition (a run of two or more): the cluster's JVMs, fresh from
    ``stack up``, spent up to twice the CPU per event in their first few jobs (run 211603Z, first repetition
    against the later ones: 52 against 27 CPU s per M events, pass-through 16.5 against 6.7-8.4, fading by the
    fifth Flink job; the same rows right after on the warm stack: 26.7 and 6.4), so a first repetition
    was most often the slowest of its row. Each warm-up drains a full backlog. Returns the keys run."""
    chosen = warm_up_specs(specs) if plan.repetitions >= 2 else []
    for spec in chosen:
        params = plan.run_params(spec.rate_hint, latency_seconds=min(2.0, plan.latency_seconds))
        try:
            measure(settings, spec, pool, params, _stack_pids(settings))
            print(f"warm-up {spec.key}: done (not measured)", flush=True)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up leaves the measured runs to report it
            print(f"warm-up {spec.key}: {type(exc).__name__}: {exc}", flush=True)
    return [spec.key for spec in chosen]


def backlog_rate(spec: SystemSpec, seen: list[float]) -> float:
    """The rate a repetition's backlog is sized for: the larger of the row's expected rate (its hint, what it
    reaches here) and its median so far. A first repetition sized from a low guess drained half the backlog
    of the later ones, so its start-up weighed twice as much: in most runs of 2026-12-05 it was the slowest
    of its row (wire-jvm-eo 54-83k events/s at 300,000 against 85-99k at 600,000; docs/benchmarks.md)."""
    return max(spec.rate_hint, statistics.median(seen)) if seen else spec.rate_hint


def run_systems(settings: Settings, plan: BenchPlan, specs: list[SystemSpec], pool: EventPool) -> list[dict]:
    rows: list[dict] = []
    for rep in range(1, plan.repetitions + 1):
        for spec in specs:  # interleaved: A B C, A B C, ...
            seen = [r["events_per_s"] for r in rows if r["system"] == spec.key and r.get("events_per_s")]
            params = plan.run_params(backlog_rate(spec, seen))
            try:
                row = measure(settings, spec, pool, params, _stack_pids(settings))  # a restarted TM has a new pid
            except Exception as exc:  # noqa: BLE001 - one failed system must not end the run
                row = {"system": spec.key, "label": spec.label, "group": spec.group, "void": True,
                       "commit_interval_ms": plan.commit_interval_ms, "max_delay_ms": spec.max_delay_ms,
                       "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
            row["repetition"] = rep
            rows.append(row)
            print(_progress(row), flush=True)
    return rows


def _progress(row: dict) -> str:
    if row.get("error"):
        return f"rep {row['repetition']} {row['system']}: ERROR {row['error']}"
    return (f"rep {row['repetition']} {row['system']}: {row.get('events_per_s')} events/s "
            f"(backlog {row['backlog']}), p50/p95/p99 {row.get('p50_ms')}/{row.get('p95_ms')}/{row.get('p99_ms')} ms "
            f"at {row.get('latency_rate')}/s, CPU {row.get('cpu_s_per_million')} s/M, "
            f"lost {row.get('lost')} dup {row.get('duplicates')}{' VOID' if row.get('void') else ''}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamscore bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return parser.parse_args(argv)


def checked_loads(loads) -> tuple[float, ...]:
    """``--latency-loads``: fractions of the drained rate below the half load (measured anyway, and left out
    here). Higher loads are refused: a phase the system cannot keep up with would leave records in flight when it
    stops, and void the whole run, its throughput and half-load latency with it."""
    bad = [load for load in loads if not 0 < load <= HALF_LOAD]
    if bad:
        raise ConfigError(f"--latency-loads: each is a fraction of the drained rate in (0, {HALF_LOAD:g}], got {bad}")
    return tuple(dict.fromkeys(load for load in loads if load != HALF_LOAD))


def run(args: argparse.Namespace, settings: Settings | None = None) -> dict:
    settings = settings or load_settings()
    plan = SMOKE if args.smoke else FULL
    if args.repetitions:
        plan = BenchPlan(**{**plan.__dict__, "repetitions": args.repetitions})
    if args.latency_loads:
        plan = BenchPlan(**{**plan.__dict__, "extra_loads": checked_loads(args.latency_loads)})
    specs = system_specs.catalogue(plan.sweep_batches, plan.sweep_delays, model_rows=not args.smoke)
    if args.systems:
        unknown = sorted(set(args.systems) - {s.key for s in specs})
        if unknown:  # a retired or mistyped row would otherwise be skipped without a word
            raise ConfigError(f"--systems: no such system {', '.join(unknown)} in this plan "
                              f"(the keys are in benchmarks/system_specs.py)")
        specs = [s for s in specs if s.key in args.systems]
    system_specs.ensure_models(specs)
    began = dt.datetime.now(dt.UTC)
    pool = EventPool(settings)
    info = machine()
    onnx = run_onnx(pool, plan)
    warmed_up_with = warm_up(settings, plan, specs, pool)
    rows = run_systems(settings, plan, specs, pool)
    summaries = report.summarize(rows)
    payload = {"started": began.isoformat(timespec="seconds"), "mode": "smoke" if args.smoke else "full",
               "note": args.note, "machine": info, "plan": plan.__dict__, "warm_up": warmed_up_with,
               "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
               "onnx_rows_per_s": onnx, "rows": rows, "summaries": summaries,
               "checks": [c.__dict__ for c in report.checks(summaries)], "capacity": capacity.capacity(rows)}
    table = report.markdown(summaries, onnx)
    if payload["capacity"]:
        table += "\n\n" + capacity.markdown(payload["capacity"])
    stamp = began.strftime("%Y%m%dT%H%M%SZ") + ("-smoke" if args.smoke else "")
    payload["files"] = [str(p) for p in report.write(args.out, stamp, payload, table)]
    print("\n" + table + "\n")
    for check in report.checks(summaries):
        print(check.line())
    print("\nwrote " + ", ".join(payload["files"]))
    return payload


def main(argv: list[str] | None = None) -> int:
    payload = run(parse_args(argv))
    return 1 if any(r.get("error") for r in payload["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
