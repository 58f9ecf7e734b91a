"""PNG plots of a benchmark run (needs matplotlib; the bench runs without it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot(out_dir: Path, stamp: str, summaries: list[dict]) -> list[Path]:
    return [_throughput(out_dir / f"bench-{stamp}-throughput.png", summaries),
            _sweep(out_dir / f"bench-{stamp}-sweep.png", summaries)]


def _throughput(path: Path, summaries: list[dict]) -> Path:
    rows = [s for s in summaries if s["events_per_s"]]
    labels = [textwrap.fill(s["label"], 48) for s in rows]  # long labels wrapped, so the bars keep their width
    lines = sum(label.count("\n") + 1 for label in labels)
    fig, ax = plt.subplots(figsize=(11, 0.3 * lines + 0.25 * len(rows) + 1.5))
    medians = [s["events_per_s"]["median"] for s in rows]
    errors = [[m - s["events_per_s"]["min"] for m, s in zip(medians, rows)],
              [s["events_per_s"]["max"] - m for m, s in zip(medians, rows)]]
    ax.barh(labels, medians, xerr=errors, color="#4477aa")
    ax.tick_params(axis="y", labelsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("events/s draining a backlog (median, min-max)")
    ax.set_title("Throughput by system (one run, interleaved)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sweep(path: Path, summaries: list[dict]) -> Path:
    points = [s for s in summaries if s["group"] in ("sweep", "streamscore") and s.get("exactly_once", True)
              and s["events_per_s"] and s["p99"] and s["max_delay_ms"] == 100]
    points.sort(key=lambda s: s["max_batch"] or 0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for field, style in (("p50", "o-"), ("p99", "s--")):
        ax.plot([s["events_per_s"]["median"] for s in points], [s[field]["median"] for s in points], style,
                label=f"{field} latency at 50% load")
    for s in points:
        ax.annotate(f"batch {s['max_batch']}", (s["events_per_s"]["median"], s["p99"]["median"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("saturation throughput, events/s (log)")
    ax.set_ylabel("end-to-end latency, ms")
    ax.set_title("streamscore exactly-once: batch-size sweep (delay 100 ms)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
