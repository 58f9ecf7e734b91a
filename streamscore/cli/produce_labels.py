"""``streamscore produce``'s labels: the demo events' ground truth (``--labels``), or a file of your own
(``--labels-input``), written to the labels topic for the drift sidecar's labelled windows and retraining."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator

from streamscore.cli.topics import resolve_topic
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import InputError


def demo_label_plan(args: argparse.Namespace):
    """The demo labels' plan from the flags, checked (``models.demo_labels.LabelPlan``)."""
    from models.demo_labels import LabelPlan

    if args.label_delay_ms < 0 or not 0.0 <= args.label_flip <= 1.0 or args.drift_after < 0:
        raise InputError(f"--labels needs --label-delay-ms >= 0, --label-flip in [0, 1] and --drift-after >= 0 "
                         f"(got {args.label_delay_ms}, {args.label_flip}, {args.drift_after})")
    return LabelPlan(args.label_delay_ms, args.label_flip, args.drift_after, seed=args.seed)


def produce_label_file(settings: Settings, args: argparse.Namespace, require_topic) -> int:
    """``produce --labels-input FILE``: the file's label records to the labels topic (``--topic``)."""
    from schemas.label_records import read_label_file
    from streamscore.harness.labels import produce_labels

    if args.input is not None or args.labels or args.model or args.drift:
        raise InputError("--labels-input writes labels only: leave out --input, --labels, --model and --drift")
    records = read_label_file(args.labels_input, int(time.time() * 1000))  # a bad file fails before Kafka
    topic = resolve_topic(settings, args.topic or "labels")
    require_topic(settings, topic)
    stats = produce_labels(settings, records, topic=topic, transaction_size=args.transaction_size)
    print(f"produced {stats['produced']} labels to {topic} in {stats['seconds']:.1f}s")
    return 0


class DemoLabels:
    """The demo events' true classes (the generator knows them), delayed, maybe flipped, each written to
    the labels topic once its event's transaction has committed and its label time has come, while the
    events are still sent (``LabelsWhenDue``): never a label before its event, nor of an event that was
    refused (``--max-message-bytes``) or never committed (a run that failed).

    A context manager around the sending: ``follow`` passes the events through, noting each one's label;
    ``committed`` (``produce_transactionally``'s ``on_commit``) hands those of a committed transaction on."""

    def __init__(self, settings: Settings, plan, count: int, drift, topic: str, quiet: bool = False):
        from models.demo_data import draw_labels, generate_columns
        from models.demo_labels import observed_classes
        from streamscore.harness.labels import LabelsWhenDue

        self.plan, self.topic, self.quiet = plan, topic, quiet
        self.classes = observed_classes(draw_labels(generate_columns(count, plan.seed, drift), plan.seed), plan)
        self.writer = LabelsWhenDue(settings, topic)
        self.uncommitted: dict[str, dict] = {}  # event id -> its label, until the event's transaction commits
        self.last_label_ms = 0

    def follow(self, events: Iterable[dict]) -> Iterator[dict]:
        from models.demo_labels import label_record

        for event, label in zip(events, self.classes.tolist()):
            self.uncommitted[str(event["event_id"])] = label_record(event, label, self.plan)
            yield event

    def committed(self, records: list[tuple[bytes, bytes, int | None]]) -> None:
        for key, _, _ in records:
            label = self.uncommitted.pop(key.decode(), None)
            if label is not None:
                self.writer.add(label)
                self.last_label_ms = max(self.last_label_ms, label["label_time"])

    def __enter__(self) -> DemoLabels:
        self.writer.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        wait_s = (self.last_label_ms - time.time() * 1000) / 1000
        if exc_info[0] is None and wait_s > 1 and not self.quiet:
            print(f"writing the last labels as they come due (the last in {wait_s:.1f} s)", flush=True)
        self.writer.__exit__(*exc_info)
        if exc_info[0] is None:
            unsent = f"; {len(self.uncommitted)} labels of refused events not written" if self.uncommitted else ""
            print(f"produced {self.writer.stats['produced']} labels to {self.topic}, each at its label time "
                  f"(delay {self.plan.delay_ms} ms, {self.plan.flip_rate:.0%} flipped after {self.plan.flip_after})"
                  f"{unsent}")
