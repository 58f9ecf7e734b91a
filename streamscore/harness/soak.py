"""The soak: steady traffic for minutes with faults of every kind at random times, some overlapping,
every record accounted by identity, and the processes' memory and the checkpoint sizes sampled.

``streamscore chaos --soak --minutes 30`` runs it on the local stack and writes its report (the
plan, the faults and when they began, the accounting, recovery per fault, RSS per process group
with its slope, checkpoint sizes) to ``benchmarks/results/soak-<UTC time>.json``.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from streamscore.foundation.config import Settings
from streamscore.harness.chaos import FaultPlan, FaultReport, run_faults
from streamscore.harness.fault_kinds import FRAUD_MODEL, FaultKind

LEAD_S, TAIL_S = 20.0, 45.0  # no fault in the first LEAD_S (the jobs warm up) nor the last TAIL_S (recovery)
MEAN_GAP_S = 45.0  # one fault every MEAN_GAP_S on average, at least one of each kind
LIFECYCLE_EVERY_S = 60.0  # a promotion or rollback this often, faults or not


@dataclass(frozen=True)
class SoakRun:
    """A soak: ``minutes`` of traffic at ``rate``/s, its fault schedule drawn from ``seed``, scoring
    ``model`` (the fraud model on the single-object wire, or the sensor model on the Confluent wire,
    whose soak draws the registry outage too)."""

    minutes: float = 30.0
    rate: float = 2500.0
    seed: int = 1
    model: str = FRAUD_MODEL


def soak_plan(run: SoakRun, sample_every_s: float = 5.0) -> FaultPlan:
    """The run's traffic; faults at uniformly random times between the lead and the tail, every kind
    at least once, the rest drawn at random (the same seed: the same plan again). Two faults drawn
    close together overlap: the second hits a job still recovering from the first."""
    duration, kinds = run.minutes * 60.0, tuple(FaultKind)
    if duration < LEAD_S + TAIL_S + 30.0:
        raise ValueError(f"a soak needs at least {(LEAD_S + TAIL_S + 30.0) / 60:.1f} minutes, got {run.minutes}")
    rng = random.Random(run.seed)
    count = max(len(kinds), int((duration - LEAD_S - TAIL_S) / MEAN_GAP_S))
    faults = list(kinds) + [rng.choice(kinds) for _ in range(count - len(kinds))]
    rng.shuffle(faults)
    times = sorted(round(rng.uniform(LEAD_S, duration - TAIL_S), 1) for _ in faults)
    return FaultPlan(tuple(faults), count=int(run.rate * duration), rate=run.rate, at_s=tuple(times),
                     timeout_s=max(300.0, duration), sample_every_s=sample_every_s,
                     lifecycle_every_s=LIFECYCLE_EVERY_S, model=run.model)


def run_soak(settings: Settings, run: SoakRun, out_dir: Path) -> tuple[FaultReport, Path]:
    """Run the soak; its report is written to ``out_dir`` as JSON too."""
    plan = soak_plan(run)
    began = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    report = run_faults(settings, plan)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"soak-{began}.json"
    path.write_text(json.dumps({**asdict(run), "schedule": [{"at_s": at, "fault": f} for at, f in plan.schedule()],
                                "report": asdict(report), "passed": report.passed}, indent=2) + "\n")
    return report, path
