"""Summaries of a benchmark run: min/median/max per system, the Markdown table, JSON, plots, target checks."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

EO = "streamscore-eo"
# the latency split at the Python step (benchmarks.latency_split), per run of a scoring row
SPLIT_FIELDS = ("p50_to_step_ms", "p99_to_step_ms", "p50_after_step_ms", "p99_after_step_ms", "p50_batch_rows",
                "p50_batch_cycle_ms")


def _stats(values: list[float]) -> dict | None:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "n": len(values)}


def summarize(rows: list[dict]) -> list[dict]:
    """One summary per system (in first-seen order); void runs are listed but not summarised."""
    order: list[str] = []
    for row in rows:
        if row["system"] not in order:
            order.append(row["system"])
    out = []
    for key in order:
        runs = [r for r in rows if r["system"] == key]
        valid = [r for r in runs if not r.get("void") and not r.get("error")]
        first = runs[0]
        rss: dict[str, float] = {}
        for r in valid:
            for role, mb in r.get("peak_rss_mb", {}).items():
                rss[role] = max(rss.get(role, 0.0), mb)
        out.append({
            "system": key, "label": first["label"], "group": first["group"],
            "commit_interval_ms": first["commit_interval_ms"], "max_delay_ms": first.get("max_delay_ms"),
            "max_batch": first.get("max_batch"), "exactly_once": first.get("exactly_once"), "runs": len(runs),
            "void_runs": len(runs) - len(valid),
            "lost": sum(r.get("lost", 0) for r in runs), "duplicates": sum(r.get("duplicates", 0) for r in runs),
            "events_per_s": _stats([r.get("events_per_s") for r in valid]),
            "latency_rate": _stats([r.get("latency_rate") for r in valid]),
            **{p: _stats([r.get(f"{p}_ms") for r in valid]) for p in ("p50", "p95", "p99")},
            **{f"{p}_from_send": _stats([r.get(f"{p}_from_send_ms") for r in valid]) for p in ("p50", "p99")},
            "cpu_s_per_million": _stats([r.get("cpu_s_per_million") for r in valid]),
            "step_split": {f: _stats([r.get(f) for r in valid]) for f in SPLIT_FIELDS},
            "latency_by_load": _by_load(valid),
            "peak_rss_mb": rss,
        })
    return out


def _by_load(runs: list[dict]) -> dict:
    """Latency per load (fraction of the run's drained rate, highest first), over the runs that measured it."""
    loads = sorted({load for r in runs for load in r.get("latency_by_load", {})}, key=float, reverse=True)
    return {load: {**{field: _stats([r.get("latency_by_load", {}).get(load, {}).get(field) for r in runs])
                      for field in ("latency_rate", "p50_ms", "p95_ms", "p99_ms")},
                   "incomplete": sum(1 for r in runs if _incomplete(r.get("latency_by_load", {}).get(load)))}
            for load in loads}


def _incomplete(phase: dict | None) -> bool:
    """A phase whose records did not all arrive in time (its percentiles would leave the slowest out)."""
    return bool(phase) and (phase.get("latency_lost", 0) > 0 or phase.get("latency_complete") is False)


def _med(summary: dict, field: str) -> float | None:
    stats = summary.get(field)
    return stats["median"] if stats else None


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    target: str
    passed: bool

    def __post_init__(self) -> None:  # numpy comparisons give np.bool_, which JSON would store as "True"
        object.__setattr__(self, "passed", bool(self.passed))
        object.__setattr__(self, "value", None if self.value is None else float(self.value))

    def line(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.2f}"
        return f"{'PASS' if self.passed else 'MISS'}  {self.name}: {shown} (target {self.target})"


def checks(summaries: list[dict]) -> list[Check]:
    by = {s["system"]: s for s in summaries}
    eo = by.get(EO)
    out: list[Check] = wire_checks(by) + fraud_path_checks(by)
    if eo is None:
        return out
    eo_rate = _med(eo, "events_per_s")
    for other, floor in (("handwritten-1", 3.0), ("quix", 2.0), ("handwritten-batched", 0.5),
                         ("flink-passthrough", 0.5)):
        base = _med(by[other], "events_per_s") if other in by else None
        ratio = eo_rate / base if eo_rate and base else None
        out.append(Check(f"streamscore EO / {other} throughput", ratio, f">= {floor}x",
                         ratio is not None and ratio >= floor))
    bound = eo["commit_interval_ms"] + 2 * (eo["max_delay_ms"] or 0) + 50
    p99 = _med(eo, "p99")
    out.append(Check(f"streamscore EO p99 at 50% load, ms (bound = checkpoint {eo['commit_interval_ms']} "
                     f"+ 2 x delay {eo['max_delay_ms']} + 50)", p99, f"<= {bound}", p99 is not None and p99 <= bound))
    return out


def wire_checks(by: dict[str, dict]) -> list[Check]:
    """Issue 14's targets for the JVM-decoded path (same run): throughput against Flink's avro-confluent
    pass-through, the hand-written loop on the same wire, the Python-decoded path (the path before) and the raw
    Flink pass-through, CPU per event, and the latency bounds."""
    jvm = by.get("wire-jvm-eo")
    if jvm is None:
        return []
    out, rate = [], _med(jvm, "events_per_s")
    for other, floor in (("passthrough-confluent", 0.5), ("handwritten-confluent", 0.8), ("wire-python-eo", 1.6),
                         ("flink-passthrough", 0.5)):
        base = _med(by[other], "events_per_s") if other in by else None
        ratio = rate / base if rate and base else None
        out.append(Check(f"JVM-decoded EO / {other} throughput", ratio, f">= {floor}x",
                         ratio is not None and ratio >= floor))
    cpu = _med(jvm, "cpu_s_per_million")  # s per million events = us per event
    out.append(Check("JVM-decoded EO CPU per event, us", cpu, "<= 25", cpu is not None and cpu <= 25))
    bound = jvm["commit_interval_ms"] + 2 * (jvm["max_delay_ms"] or 0) + 50
    p99 = _med(jvm, "p99")
    out.append(Check("JVM-decoded EO p99 at 50% load, ms", p99, f"<= {bound}", p99 is not None and p99 <= bound))
    alo = by.get("wire-jvm-alo")
    p99 = _med(alo, "p99") if alo else None
    out.append(Check("JVM-decoded ALO (delay 10 ms) p99 at 50% load, ms", p99, "<= 100",
                     p99 is not None and p99 <= 100))
    if alo and alo.get("p99_from_send"):  # a diagnosis, not the target: the sender's own lag left out
        p99 = _med(alo, "p99_from_send")
        out.append(Check("JVM-decoded ALO (delay 10 ms) p99 from the actual send (not the schedule), ms", p99,
                         "<= 100", p99 <= 100))
    return out


def fraud_path_checks(by: dict[str, dict]) -> list[Check]:
    """The demo fraud model on its path now (Confluent wire, decoded in the JVM) against its path before
    (single-object, decoded in Python, batch 512: ``streamscore-eo``), in the same run."""
    now, before = by.get("wire-fraud-jvm-eo"), by.get("streamscore-eo")
    if now is None or before is None:
        return []
    rate, cpu = _med(now, "events_per_s"), _med(now, "cpu_s_per_million")
    out = []
    for key in ("streamscore-eo", "streamscore-eo-knobs-before"):  # the path before, with today's knobs or its own
        if key in by:
            base = _med(by[key], "events_per_s")
            ratio = rate / base if rate and base else None
            out.append(Check(f"fraud model, Confluent wire in the JVM / its path before ({key}) throughput", ratio,
                             ">= 1.6x", ratio is not None and ratio >= 1.6))
    return [*out, Check("fraud model, Confluent wire in the JVM: CPU per event, us", cpu, "<= 25",
                        cpu is not None and cpu <= 25)]


def _fmt(stats: dict | None, digits: int = 0) -> str:
    if not stats:
        return "void"
    if stats["n"] == 1:
        return f"{stats['median']:,.{digits}f}"
    return f"{stats['median']:,.{digits}f} ({stats['min']:,.{digits}f}-{stats['max']:,.{digits}f})"


def markdown(summaries: list[dict], onnx: dict | None) -> str:
    header = ("| system | events/s median (min-max) | latency rate/s | p50 / p95 / p99 ms | commit / checkpoint "
              "| CPU s per M events | peak RSS MB (by process) | runs (void) |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        lat = " / ".join(_fmt(s[p]) for p in ("p50", "p95", "p99")) if s["p99"] else "void"
        rss = ", ".join(f"{role} {mb:,.0f}" for role, mb in s["peak_rss_mb"].items())
        delay = f", delay {s['max_delay_ms']} ms" if s.get("max_delay_ms") else ""
        lines.append(f"| {s['label']} | {_fmt(s['events_per_s'])} | {_fmt(s['latency_rate'])} | {lat} | "
                     f"{s['commit_interval_ms']} ms{delay} | {_fmt(s['cpu_s_per_million'], 1)} | {rss} | "
                     f"{s['runs']} ({s['void_runs']}) |")
    lines += _split_table(summaries)
    lines += _load_table(summaries)
    if onnx:
        lines += ["", "| ONNX Runtime alone, batch | " + " | ".join(str(b) for b in onnx) + " |",
                  "|---|" + "---|" * len(onnx),
                  "| rows/s median (min-max) | " + " | ".join(_fmt(v) for v in onnx.values()) + " |"]
    return "\n".join(lines)


def _split_table(summaries: list[dict]) -> list[str]:
    """The latency split at the Python step of the rows that have one (docs/benchmarks.md)."""
    rows = [s for s in summaries if s.get("step_split", {}).get("p50_to_step_ms")]
    if not rows:
        return []
    lines = ["", "| system | to the step p50 / p99 ms | after the step p50 / p99 ms | rows a batch | batch cycle ms |",
             "|---|---|---|---|---|"]
    for s in rows:
        split = s["step_split"]
        cycle = _fmt(split["p50_batch_cycle_ms"]) if split["p50_batch_cycle_ms"] else "n/a"
        lines.append(f"| {s['label']} | {_fmt(split['p50_to_step_ms'])} / {_fmt(split['p99_to_step_ms'])} | "
                     f"{_fmt(split['p50_after_step_ms'])} / {_fmt(split['p99_after_step_ms'])} | "
                     f"{_fmt(split['p50_batch_rows'])} | {cycle} |")
    return lines


def _load_table(summaries: list[dict]) -> list[str]:
    """Latency against load, for the rows measured at several loads (``--latency-loads``)."""
    rows = [s for s in summaries if s.get("latency_by_load")]
    if not rows:
        return []
    lines = ["", "| system | load (of its drained rate) | rate/s | p50 / p95 / p99 ms |", "|---|---|---|---|"]
    for s in rows:
        for load, stats in s["latency_by_load"].items():
            lat = " / ".join(_fmt(stats[f"{p}_ms"]) for p in ("p50", "p95", "p99")) if stats["p99_ms"] else "void"
            if stats.get("incomplete"):
                lat += f" ({stats['incomplete']} incomplete)"
            lines.append(f"| {s['label']} | {float(load):.0%} | {_fmt(stats['latency_rate'])} | {lat} |")
    return lines


def write(out_dir: Path, stamp: str, payload: dict, table: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"bench-{stamp}.json"
    md_path = out_dir / f"bench-{stamp}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(table + "\n")
    paths = [json_path, md_path]
    try:
        from benchmarks.plots import plot
    except ImportError:  # matplotlib is optional
        return paths
    return paths + plot(out_dir, stamp, payload["summaries"])
