"""Fault runs: exactly-once checked under the faults that happen in production.

One run: fresh topics, the scoring job and the drift sidecar, ``count`` events with unique ids
produced at a steady rate, one fault or several one after the other (``FaultPlan``), then a
read_committed account of every record by identity (``streamscore.harness.accounting``): scored or
dead-lettered exactly once, never both, none missing, each dead letter tied to its record by source
partition and offset. ``streamscore chaos`` runs it against the local stack;
``tests/integration/test_faults.py`` runs it in the suite.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace

from connectors.kafka_clients import create_topics, delete_topics
from jobs.flink_cluster import cancel_jobs
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_together
from models.demo_data import DriftSpec
from streamscore.foundation.config import Settings, TopicSpec
from streamscore.foundation.errors import StreamscoreError
from streamscore.harness.accounting import Identities, account, read_identities
from streamscore.harness.fault_actions import CACHE_FAULTS, FAULTS, OUTAGE_FAULTS, FaultContext
from streamscore.harness.fault_kinds import DEMO_MODELS, FRAUD_MODEL
from streamscore.harness.lifecycle_run import LifecycleDriver, LifecycleModels, check_versions
from streamscore.harness.resources import ResourceSampler
from streamscore.harness.run_evidence import cache_evidence, drift_outputs
from streamscore.harness.traffic import TrafficPlan, TrafficReport, TrafficTopics, run_traffic
from streamscore.harness.traffic_wire import OutputTopics, confluent_traffic
from streamscore.stack import Stack


@dataclass(frozen=True)
class FaultReport:
    fault: str
    produced: int
    scored: int
    dead_lettered: int
    duplicates: int
    missing: int
    in_both: int
    recoveries: tuple[float | None, ...]  # per fault: the worst latency of events sent from 2 s before it
    fault_at_s: tuple[float, ...]
    cache: dict | None = None  # cache faults: lookups, hits, errors (job metrics) and the job's log events
    alerts: int = 0  # drift alerts the sidecar committed during the run
    triggers: int = 0
    drift_duplicates: int = 0  # alerts or triggers committed twice
    recounted: int = 0  # the live collector stalled this many times and a fresh read_committed read took over
    misrouted: int = 0  # a malformed record scored or a valid one dead-lettered
    unidentified: int = 0  # outputs that match no produced record (by dead-letter coordinates or event id)
    examples: tuple[str, ...] = ()  # ids behind non-zero counts
    resources: dict | None = None  # a sampled run (the soak): RSS per process group and checkpoint sizes
    lifecycle: dict | None = None  # a run with lifecycle changes: harness.lifecycle_run.LifecycleCheck

    @property
    def recovery_s(self) -> float | None:
        """The slowest recovery of the run; None when no event sent after some fault was ever scored."""
        return None if not self.recoveries or None in self.recoveries else max(self.recoveries)

    @property
    def passed(self) -> bool:
        lifecycle_wrong = bool(self.lifecycle and (self.lifecycle["wrong_version"] or self.lifecycle["wrong_score"]
                                                   or self.lifecycle["failed_changes"]))
        return not (self.missing or self.duplicates or self.in_both or self.misrouted or self.unidentified
                    or self.drift_duplicates or lifecycle_wrong)

    def line(self) -> str:
        recovery = " / ".join(f"{r:.1f}s" if r is not None else "n/a" for r in self.recoveries) or "n/a"
        cache = "" if self.cache is None else (
            f", cache lookups {self.cache['lookups']}, errors {self.cache['errors']}, "
            f"log {'/'.join(self.cache['log_events']) or 'none'}")
        return (f"{self.fault}: produced {self.produced}, scored {self.scored}, dead-lettered {self.dead_lettered}, "
                f"duplicates {self.duplicates}, missing {self.missing}, in both {self.in_both}, "
                f"misrouted {self.misrouted}, unidentified {self.unidentified}, "
                f"{f'e.g. {list(self.examples)}, ' if self.examples else ''}"
                f"recovery {recovery}, drift alerts {self.alerts} / triggers {self.triggers} "
                f"(duplicated {self.drift_duplicates}){cache}"
                f"{f', recounted {self.recounted}x by a fresh read' if self.recounted else ''}"
                f"{_resources_line(self.resources)}{_lifecycle_line(self.lifecycle)} "
                f"-> {'PASS' if self.passed else 'FAIL'}")


def _lifecycle_line(lifecycle: dict | None) -> str:
    if not lifecycle:
        return ""
    versions = ", ".join(f"{v} {n}" for v, n in sorted(lifecycle["records_by_version"].items()))
    failed = f" ({len(lifecycle['failed_changes'])} failed)" if lifecycle["failed_changes"] else ""
    return (f", lifecycle: {lifecycle['changes']} changes{failed}, records by version {versions}, "
            f"wrong version {lifecycle['wrong_version']}, scores checked {lifecycle['scores_checked']} "
            f"(wrong {lifecycle['wrong_score']})")


def _resources_line(resources: dict | None) -> str:
    if not resources:
        return ""
    slopes = ", ".join(f"{group} {resources[group]['slope_mib_per_min']:+.1f}"
                       for group in ("kafka", "taskmanagers", "python_workers") if group in resources)
    sizes = resources.get("checkpoint_bytes")
    checkpoints = f", checkpoint bytes median {sizes['median']} (max {sizes['max']})" if sizes else ""
    return f", RSS slope MiB/min: {slopes}{checkpoints}"


@dataclass(frozen=True)
class FaultPlan:
    """``faults`` injected one after the other into ``count`` events sent at ``rate``/s: the first
    ``first_at_s`` seconds in, the next ones ``spacing_s`` apart (None: one fault a third of the
    way in, or 5 s in for an outage that lasts, so that traffic outlives it)."""

    faults: tuple[str, ...]
    count: int = 200_000
    rate: float = 5000.0
    first_at_s: float | None = None
    spacing_s: float = 25.0
    timeout_s: float = 300.0
    at_s: tuple[float, ...] | None = None  # each fault's own time instead (the soak's random schedule)
    sample_every_s: float | None = None  # sample the processes' memory and the checkpoint sizes
    lifecycle_every_s: float | None = None  # promote or roll back the model this often (the soak)
    model: str = FRAUD_MODEL  # one of DEMO_MODELS

    @property
    def base(self) -> str:
        """The demo model's name: fraud or sensor."""
        return self.model.split(":")[0]

    def schedule(self) -> list[tuple[float, str]]:
        if self.at_s is not None:
            return list(zip(self.at_s, self.faults))
        first = self.first_at_s
        if first is None:
            first = 5.0 if self.faults[0] in CACHE_FAULTS else self.count / self.rate / 3
        return [(first + i * self.spacing_s, fault) for i, fault in enumerate(self.faults)]


def run_faults(settings: Settings, plan: FaultPlan) -> FaultReport:
    """The scoring job and the drift sidecar on fresh topics, ``plan.count`` events (a 1-sigma drift in
    the second half, so the sidecar alerts), the plan's faults (and, with ``plan.lifecycle_every_s``,
    promotions and rollbacks), then every record and alert accounted."""
    unknown = [f for f in plan.faults if f not in FAULTS]
    if unknown or not plan.faults:
        raise StreamscoreError(f"unknown fault {', '.join(unknown) or '(none given)'}; known: {', '.join(FAULTS)}")
    if plan.model not in DEMO_MODELS:
        raise StreamscoreError(f"chaos scores a demo model, whose events it generates and whose versions it "
                               f"retrains: {' or '.join(DEMO_MODELS)}, not {plan.model}")
    run = _FaultRun(settings, plan)
    try:
        return run.execute()
    finally:
        run.clean_up()


class _FaultRun:
    """One run's topics, jobs, injector, sampler and lifecycle driver, and their clean-up."""

    def __init__(self, settings: Settings, plan: FaultPlan):
        self.settings, self.plan, self.tag = settings, plan, uuid.uuid4().hex[:8]
        roles = ("events", "scored", "dead", "alerts", "control") + (("shadow",) if plan.lifecycle_every_s else ())
        self.topics = {role: f"chaos-{role}-{self.tag}" for role in roles}
        self.caching = any(f in CACHE_FAULTS for f in plan.faults)
        self.models = LifecycleModels.create(self.tag, plan.base) if plan.lifecycle_every_s else None
        self.ctx: FaultContext | None = None
        self.drift_job = ""
        self.injector: _Injector | None = None
        self.sampler: ResourceSampler | None = None
        self.driver: LifecycleDriver | None = None

    def _submit(self) -> FaultContext:
        settings, topics = self.settings, self.topics
        create_topics(settings, [TopicSpec(r, n, 2 if r in ("events", "scored") else 1) for r, n in topics.items()])
        lifecycle = {"model": self.plan.model} if self.models is None else {
            "model": self.models.first_ref, "registry_dir": str(self.models.registry_dir),
            "control_topic": topics["control"], "shadow_topic": topics["shadow"]}
        config = scoring_config_from_settings(settings, events_topic=topics["events"], scored_topic=topics["scored"],
                                              dead_letter_topic=topics["dead"], job_name=f"chaos-{self.tag}",
                                              startup_mode="earliest-offset", cache_enabled=self.caching, **lifecycle)
        drift = drift_config_from_settings(settings, model=self.plan.model, events_topic=topics["events"],
                                           scored_topic=topics["scored"],
                                           alerts_topic=topics["alerts"], control_topic=topics["control"],
                                           labels_topic="", job_name=f"chaos-drift-{self.tag}",
                                           startup_mode="earliest-offset")
        self.drift_job, scoring_job = submit_together(settings, [drift, config])
        self.ctx = FaultContext(Stack(settings), settings, config, scoring_job)
        return self.ctx

    def _traffic(self) -> TrafficPlan:
        """The run's events: the fraud model's with a 1-sigma drift in the second half, or a bound model's
        on the Confluent wire (the output schemas' ids learnt now, before any registry outage)."""
        plan, topics = self.plan, self.topics
        fraud = plan.base == "fraud"
        wire = confluent_traffic(self.settings, plan.model,
                                 OutputTopics(topics["events"], topics["scored"], topics["dead"]))
        drift = [DriftSpec("device_trust_score", "shift", 1.0, start_after=plan.count // 2)] if fraud else []
        return TrafficPlan(plan.count, f"c{self.tag}-", rate=plan.rate, malformed_every=1000,
                           transaction_size=max(1, int(plan.rate // 20)), timeout_s=plan.timeout_s, drift=drift,
                           wire=wire)

    def execute(self) -> FaultReport:
        settings, plan, topics = self.settings, self.plan, self.topics
        ctx = self._submit()
        traffic = self._traffic()
        self.injector = injector = _Injector(ctx, plan.schedule())
        self.sampler = sampler = ResourceSampler(settings, lambda: ctx.job_id, plan.sample_every_s) \
            if plan.sample_every_s else None
        self.driver = driver = None if self.models is None else LifecycleDriver(
            settings, self.models, topics["control"], plan.lifecycle_every_s)
        for thread in (sampler, injector, driver):
            if thread:
                thread.start()
        report = run_traffic(settings, traffic, TrafficTopics(topics["events"], topics["scored"], topics["dead"]))
        injector.join()
        if driver:
            driver.stop()
        resources = sampler.stop() if sampler else None
        identities = read_identities(settings, topics["events"], [*report.valid_ids, *report.malformed_keys],
                                     report.malformed_keys)
        cache = cache_evidence(settings, ctx.config.job_name) if self.caching else None
        drift_counts = drift_outputs(settings, topics["alerts"], topics["control"])
        lifecycle = None if driver is None else asdict(check_versions(
            settings, self.models, topics["control"], report.scored, traffic, tuple(driver.errors)))
        if injector.errors:
            raise StreamscoreError(f"chaos: injecting failed: {'; '.join(injector.errors)}")
        return replace(_account("+".join(plan.faults), report, injector.fault_ms, identities), cache=cache,
                       resources=resources, lifecycle=lifecycle, **drift_counts)

    def clean_up(self) -> None:
        """Threads first (a fault in flight may still submit a job), then the jobs, topics and models; each
        step on its own, so one failing (the broker just restarted) leaves the others done."""
        if self.driver:
            self.driver.stop()
        if self.sampler and self.sampler.is_alive():
            self.sampler.stop()
        if self.injector:
            self.injector.join(600)
        cancel_jobs(self.settings, [j for j in (self.ctx.job_id if self.ctx else "", self.drift_job) if j],
                    quietly=True)
        with contextlib.suppress(StreamscoreError):
            delete_topics(self.settings, list(self.topics.values()))
        if self.models:
            self.models.remove(self.settings)


class _Injector(threading.Thread):
    """Runs the schedule's faults in order, each at its time from the start (or when the one
    before it has finished, if that is later); an outage that lasts (Redis) runs beside the next
    faults instead of holding them back. Records when each began and what failed."""

    def __init__(self, ctx: FaultContext, schedule: list[tuple[float, str]]):
        super().__init__(daemon=True)
        self.ctx, self.schedule = ctx, schedule
        self.fault_ms: list[int] = []
        self.errors: list[str] = []

    def run(self) -> None:
        began, outages = time.monotonic(), []
        for at_s, fault in self.schedule:
            time.sleep(max(0.0, began + at_s - time.monotonic()))
            self.fault_ms.append(int(time.time() * 1000))
            if fault in OUTAGE_FAULTS:
                outages.append(threading.Thread(target=self._inject, args=(fault,), daemon=True))
                outages[-1].start()
            else:
                self._inject(fault)
        for outage in outages:
            outage.join()

    def _inject(self, fault: str) -> None:
        try:
            FAULTS[fault](self.ctx)
        except Exception as exc:  # noqa: BLE001 - reported by run_faults
            self.errors.append(f"{fault}: {exc}")


def _account(faults: str, report: TrafficReport, fault_ms: list[int], identities: Identities) -> FaultReport:
    """Counts computed from identities: each produced record tied to its scored record or dead letter."""
    found = account(identities, report.scored, report.scored_duplicates, report.dead_letters)
    ends = [*fault_ms[1:], None]
    return FaultReport(faults, report.produced, found.scored, found.dead_lettered, found.duplicates, found.missing,
                       found.in_both, tuple(_recovery_s(report, at, end) for at, end in zip(fault_ms, ends)),
                       tuple(ms / 1000.0 for ms in fault_ms), recounted=report.recounted,
                       misrouted=found.misrouted, unidentified=found.unidentified, examples=found.examples)


def _recovery_s(report: TrafficReport, fault_ms: int, next_fault_ms: int | None = None) -> float | None:
    """The worst end-to-end latency of events sent from 2 s before the fault until 2 s before the next
    one: how long the fault held records back (with no fault it is the usual p100, about one
    checkpoint interval). When the traffic sent none in that span (its producer was held back by an
    earlier fault: a transaction a broker restart failed is sent again whole, up to a minute later),
    the events of its first 2 s of sending after the fault stand in. None: no event sent after the fault
    was ever scored."""
    start = fault_ms - 2000
    end = float("inf") if next_fault_ms is None else next_fault_ms - 2000
    after = [(event_time, arrival) for event_time, arrival in report.arrivals if event_time >= start]
    if not after:
        return None
    held = [arrival - event_time for event_time, arrival in after if event_time < end]
    if not held:
        resumed = min(event_time for event_time, _ in after)
        held = [arrival - event_time for event_time, arrival in after if event_time < resumed + 2000]
    return max(held) / 1000.0
