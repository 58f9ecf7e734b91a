"""The systems a benchmark run compares: what each row is (:class:`SystemSpec`) and the catalogue of rows.

How each kind of row is started and stopped on the local stack: :mod:`benchmarks.systems`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from benchmarks.feed import APPARATUS_NICE, SENSOR_MODEL
from jobs.scoring_config import DEFAULT_BOUND_BATCH
from streamscore.foundation.registry_settings import WireDecoder
from streamscore.foundation.vocabulary import Framing

SystemKind = Literal["flink-scoring", "flink-passthrough", "loop-score", "loop-passthrough", "quix"]
# the report's sections: the limits, the baselines and peer, streamscore and its sweeps, the wire rows, models, cache
SystemGroup = Literal["limits", "baseline", "peer", "streamscore", "sweep", "wire", "wire-sweep", "models", "cache",
                      "capacity"]


@dataclass(frozen=True)
class Topics:
    source: str
    scored: str
    dead: str


@dataclass(frozen=True)
class SystemSpec:
    key: str  # short, stable id used in JSON and ratio checks
    label: str
    kind: SystemKind
    group: SystemGroup
    max_batch: int | None = None
    max_delay_ms: int | None = None
    exactly_once: bool = True
    rate_hint: float = 5000.0  # events/s the row reaches here: sizes its backlog (bench.backlog_rate)
    note: str = ""
    model: str | None = None  # streamscore rows: the model scored (default fraud:1.0.0)
    cache: bool = False  # streamscore rows: the Redis prediction cache on
    repeat: float = 0.0  # fraction of events repeating an earlier event's features
    decoder: WireDecoder | None = None  # a bound model's rows: where the Confluent wire is decoded (None: settings)
    parallelism: int = 1  # streamscore rows: the scoring job's parallelism
    partitions: int = 2  # of the input, scored and dead-letter topics
    framing: Framing | None = None  # None: a model's own schema on the Confluent wire, the demo events single-object
    batches_per_bundle: int | None = None  # streamscore rows: batches per bundle (None: the job's default)
    object_reuse: bool | None = None  # streamscore rows: Flink's object reuse (None: the job's default)
    transaction_naming: str | None = None  # streamscore rows: how the sinks name transactions (None: the default)
    apparatus_nice: int = APPARATUS_NICE  # the CPU priority of the benchmark's sender and reader (0: the system's)

    def __post_init__(self) -> None:
        for name, value, choices in (("kind", self.kind, SystemKind), ("group", self.group, SystemGroup)):
            if value not in get_args(choices):
                raise ValueError(f"SystemSpec {self.key!r}: {name} {value!r} is not one of {get_args(choices)}")

    @property
    def confluent(self) -> bool:
        """Whether the row is fed (and its job reads) the Confluent wire."""
        if self.framing is not None:
            return self.framing == "confluent"
        from models.registry import load_model

        return self.model is not None and load_model(self.model).card.event_schema is not None


WIDE_MODEL = "fraud-wide:1.0.0"
# a smoke run checks each runner once: each wire runner, and at-least-once on the path now; it skips
# handwritten-1 (handwritten-batched's code), at-least-once on the path before and the path before with
# its old knobs (streamscore-eo's runner)
SMOKE_WIRE_ROWS = ("wire-jvm-eo", "wire-jvm-alo", "passthrough-confluent", "handwritten-confluent")
SMOKE_SKIPPED = ("handwritten-1", "streamscore-alo", "streamscore-eo-knobs-before")


def model_and_cache_rows() -> list[SystemSpec]:
    """Inside the scoring job (EO, batch 512, delay 100 ms): the heavy MLP in FP32 and INT8, and the
    Redis prediction cache at 0 / 50 / 90 % repeated inputs on the cheap tree model, on the MLP and
    on the deliberately expensive ``fraud-wide`` (with its no-cache row as the baseline)."""
    rows = [SystemSpec("model-mlp-fp32", "streamscore EO, fraud-mlp FP32 (25-512-512-256-1)", "flink-scoring",
                       "models", max_batch=512, max_delay_ms=100, rate_hint=8000, model="fraud-mlp:1.0.0"),
            SystemSpec("model-mlp-int8", "streamscore EO, fraud-mlp INT8", "flink-scoring", "models",
                       max_batch=512, max_delay_ms=100, rate_hint=10_000, model="fraud-mlp:1.0.0+int8"),
            SystemSpec("model-wide", "streamscore EO, fraud-wide FP32 (25-1536-1536-512-1), no cache",
                       "flink-scoring", "models", max_batch=512, max_delay_ms=100, rate_hint=3000,
                       model=WIDE_MODEL)]
    for model, name in (("fraud:1.0.0", "trees"), ("fraud-mlp:1.0.0", "mlp"), (WIDE_MODEL, "wide")):
        for repeat in (0.0, 0.5, 0.9):
            rows.append(SystemSpec(f"cache-{name}-r{int(repeat * 100)}",
                                   f"streamscore EO + Redis cache, {name}, {int(repeat * 100)} % repeated inputs",
                                   "flink-scoring", "cache", max_batch=512, max_delay_ms=100,
                                   rate_hint=3000 if name == "wide" else 10_000,
                                   model=model, cache=True, repeat=repeat))
    return rows


CAPACITY_PARALLELISM = (1, 2, 4)


def capacity_rows() -> list[SystemSpec]:
    """The capacity table's rows: streamscore EO with the demo fraud model on its path now (Confluent wire,
    decoded in the JVM, the bound default batch, delay 100 ms) at parallelism 1, 2 and 4, each over the same
    4 partitions, so their CPU per event can be compared side by side."""
    return [SystemSpec(f"capacity-p{p}", f"streamscore EO at parallelism {p}, 4 partitions (fraud model, Confluent "
                       f"wire, decoded in the JVM, batch {DEFAULT_BOUND_BATCH})", "flink-scoring", "capacity",
                       max_batch=DEFAULT_BOUND_BATCH, max_delay_ms=100, rate_hint=60_000, parallelism=p, partitions=4,
                       decoder="jvm", model="fraud:1.0.0", framing="confluent")
            for p in CAPACITY_PARALLELISM]


def wire_rows(sweep_batches: tuple[int, ...]) -> list[SystemSpec]:
    """A bound model on the Confluent wire (the sensor model: 6 features, readings from ``models.sensor_demo``),
    side by side: Flink SQL copying the readings in its own ``avro-confluent`` format (no Python), the
    hand-written loop on the same wire and batch, decoded in the JVM (``jobs/udf``) at the bound default batch,
    decoded in the Python step at 512 (the path before), and (a full run) the batch sweep of both decoders."""
    sensor = {"model": SENSOR_MODEL, "max_delay_ms": 100, "rate_hint": 90_000.0}
    rows = [SystemSpec("passthrough-confluent", "Flink SQL pass-through, avro-confluent in and out, EO (no Python)",
                       "flink-passthrough", "wire", model=SENSOR_MODEL, rate_hint=110_000),
            SystemSpec("handwritten-confluent", f"hand-written loop, Confluent wire, batches of {DEFAULT_BOUND_BATCH}",
                       "loop-score", "wire", **{**sensor, "max_batch": DEFAULT_BOUND_BATCH}),
            SystemSpec("wire-python-eo", "sensor model, Confluent wire decoded in Python, EO (batch 512: the path "
                       "before)", "flink-scoring", "wire", max_batch=512, decoder="python", **sensor),
            SystemSpec("wire-jvm-eo", f"sensor model, decoded in the JVM, EO (batch {DEFAULT_BOUND_BATCH}: the "
                       "default)",
                       "flink-scoring", "wire", max_batch=DEFAULT_BOUND_BATCH, decoder="jvm", **sensor),
            SystemSpec("wire-jvm-alo", f"sensor model, decoded in the JVM, ALO (batch {DEFAULT_BOUND_BATCH}, delay "
                       "10 ms)", "flink-scoring", "wire", max_batch=DEFAULT_BOUND_BATCH, decoder="jvm",
                       exactly_once=False, **{**sensor, "max_delay_ms": 10}),
            SystemSpec("wire-fraud-jvm-eo", f"fraud model, Confluent wire decoded in the JVM, EO (batch "
                       f"{DEFAULT_BOUND_BATCH}: its path now; streamscore-eo is its path before)", "flink-scoring",
                       "wire", max_batch=DEFAULT_BOUND_BATCH, max_delay_ms=100, decoder="jvm", model="fraud:1.0.0",
                       framing="confluent", rate_hint=70_000.0)]
    rows += [SystemSpec(f"wire-jvm-eo-bundle{n}", f"sensor model, decoded in the JVM, EO (batch {DEFAULT_BOUND_BATCH}, "
                        f"{n} batches per bundle)", "flink-scoring", "wire-sweep", max_batch=DEFAULT_BOUND_BATCH,
                        decoder="jvm", batches_per_bundle=n, **sensor) for n in (1, 2, 8)]
    rows.append(SystemSpec("wire-jvm-eo-copying", f"sensor model, decoded in the JVM, EO (batch {DEFAULT_BOUND_BATCH}, "
                           "object reuse off: records copied between chained operators)", "flink-scoring",
                           "wire-sweep", max_batch=DEFAULT_BOUND_BATCH, decoder="jvm", object_reuse=False, **sensor))
    rows.append(SystemSpec("wire-jvm-eo-incrementing", f"sensor model, decoded in the JVM, EO (batch "
                           f"{DEFAULT_BOUND_BATCH}, a new transactional id every checkpoint: the connector's default)",
                           "flink-scoring", "wire-sweep", max_batch=DEFAULT_BOUND_BATCH, decoder="jvm",
                           transaction_naming="incrementing", **sensor))
    rows.append(SystemSpec("wire-jvm-alo-bundle1", f"sensor model, decoded in the JVM, ALO (batch "
                           f"{DEFAULT_BOUND_BATCH}, delay 10 ms, 1 batch per bundle)", "flink-scoring", "wire-sweep",
                           max_batch=DEFAULT_BOUND_BATCH, decoder="jvm", exactly_once=False, batches_per_bundle=1,
                           **{**sensor, "max_delay_ms": 10}))
    rows.append(SystemSpec("passthrough-confluent-alo", "Flink SQL pass-through, avro-confluent in and out, ALO (no "
                           "Python: the latency floor of the ALO rows)", "flink-passthrough", "wire-sweep",
                           model=SENSOR_MODEL, exactly_once=False, rate_hint=110_000))
    rows += _peer_rows(sensor)
    rows.append(SystemSpec("wire-jvm-alo-b512", "sensor model, decoded in the JVM, ALO (batch 512, delay 10 ms: "
                           "batches stream to Python within a bundle)", "flink-scoring", "wire-sweep", max_batch=512,
                           decoder="jvm", exactly_once=False, **{**sensor, "max_delay_ms": 10}))
    if len(sweep_batches) > 1:  # the batch sweep of a full run
        rows += _decoder_sweep_rows(sensor)
    return rows


def _decoder_sweep_rows(sensor: dict) -> list[SystemSpec]:
    """Both decoders at batches of 512, 1024, 2048 and 4096, but for the two rows :func:`wire_rows` has."""
    rows = []
    for size in (512, 1024, 2048, 4096):
        for decoder in ("jvm", "python"):
            if (decoder, size) not in (("jvm", DEFAULT_BOUND_BATCH), ("python", 512)):
                where = "in the JVM" if decoder == "jvm" else "in Python"
                rows.append(SystemSpec(f"wire-{decoder}-b{size}", f"sensor model, decoded {where}, EO, batch {size}",
                                       "flink-scoring", "wire-sweep", max_batch=size, decoder=decoder, **sensor))
    return rows


def _peer_rows(sensor: dict) -> list[SystemSpec]:
    """The ALO row and its pass-through floor with the benchmark's sender and reader at the system's CPU
    priority (``apparatus_nice`` 0), to compare with the default (``benchmarks.feed.APPARATUS_NICE``)."""
    peer = "; the benchmark's sender and reader at the system's CPU priority"
    return [SystemSpec("wire-jvm-alo-peer", f"sensor model, decoded in the JVM, ALO (batch {DEFAULT_BOUND_BATCH}, "
                       f"delay 10 ms{peer})", "flink-scoring", "wire-sweep", max_batch=DEFAULT_BOUND_BATCH,
                       decoder="jvm", exactly_once=False, apparatus_nice=0, **{**sensor, "max_delay_ms": 10}),
            SystemSpec("passthrough-confluent-alo-peer", f"Flink SQL pass-through, avro-confluent in and out, ALO "
                       f"(no Python{peer})", "flink-passthrough", "wire-sweep", model=SENSOR_MODEL,
                       exactly_once=False, rate_hint=110_000, apparatus_nice=0)]


def ensure_models(specs: list[SystemSpec]) -> None:
    """Build the models a run needs that are built on demand (``fraud-wide``, not committed)."""
    from models.registry import DEFAULT_ROOT

    if any(s.model == WIDE_MODEL for s in specs) and not (DEFAULT_ROOT / "fraud-wide" / "1.0.0").is_dir():
        from models.build_heavy import build_wide

        print(f"building {WIDE_MODEL} (the deliberately expensive model; about a minute) ...", flush=True)
        print(f"built {build_wide()}", flush=True)


def catalogue(sweep_batches: tuple[int, ...], sweep_delays: tuple[int, ...],
              model_rows: bool = True) -> list[SystemSpec]:
    """All systems of one run, in their interleaving order (``model_rows``: the model and cache rows)."""
    systems = [
        SystemSpec("kafka-passthrough", "Kafka->Kafka pass-through, confluent-kafka, transactional (no model)",
                   "loop-passthrough", "limits", max_batch=1000, rate_hint=60_000),
        SystemSpec("flink-passthrough", "Flink SQL pass-through, exactly-once (no Python, no model)",
                   "flink-passthrough", "limits", rate_hint=120_000),
        SystemSpec("handwritten-1", "hand-written loop, 1 record per model call", "loop-score", "baseline",
                   max_batch=1, rate_hint=2500),
        SystemSpec("handwritten-batched", "hand-written loop, batches of 512", "loop-score", "baseline",
                   max_batch=512, rate_hint=20_000),
        SystemSpec("quix", "Quix Streams 3, exactly-once, 1 record per model call", "quix", "peer",
                   rate_hint=2000, note="Quix has no native micro-batching; per record is what its users write"),
        SystemSpec("streamscore-eo", "streamscore, exactly-once (batch 512, delay 100 ms)", "flink-scoring",
                   "streamscore", max_batch=512, max_delay_ms=100, rate_hint=40_000),
        SystemSpec("streamscore-eo-knobs-before", "streamscore, exactly-once (batch 512, delay 100 ms), the job's "
                   "knobs before issue 14 (2 batches a bundle, object reuse off)", "flink-scoring", "streamscore",
                   max_batch=512, max_delay_ms=100, rate_hint=35_000, batches_per_bundle=2, object_reuse=False),
        SystemSpec("streamscore-alo", "streamscore, at-least-once (batch 512, delay 100 ms)", "flink-scoring",
                   "streamscore", max_batch=512, max_delay_ms=100, exactly_once=False, rate_hint=40_000),
    ]
    for size in sweep_batches:
        systems.append(SystemSpec(f"sweep-b{size}-d100", f"streamscore EO, batch {size}, delay 100 ms",
                                  "flink-scoring", "sweep", max_batch=size, max_delay_ms=100,
                                  rate_hint=max(500.0, min(20_000.0, 700.0 * size))))
    wire = wire_rows(sweep_batches)
    systems += wire if model_rows else [r for r in wire if r.key in SMOKE_WIRE_ROWS]
    systems += model_and_cache_rows() + capacity_rows() if model_rows else []
    if not model_rows:  # a smoke run checks each runner once
        systems = [s for s in systems if s.key not in SMOKE_SKIPPED]
    for delay in sweep_delays:
        systems.append(SystemSpec(f"sweep-b512-d{delay}", f"streamscore EO, batch 512, delay {delay} ms",
                                  "flink-scoring", "sweep", max_batch=512, max_delay_ms=delay, rate_hint=20_000))
    return systems
