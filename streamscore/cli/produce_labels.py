"""``streamscore produce``'s labels: the demo events' ground truth (``--labels``), or a file of your own
(``--labels-input``), written to the labels topic for the drift sidecar's labelled windows and retraining."""

from __future__ import annotations

import argparse
import time

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


def produce_demo_labels(settings: Settings, plan, sent: list[dict], drift) -> None:
    """The true classes of the demo events just sent (the generator knows them), delayed, maybe flipped."""
    from models.demo_data import draw_labels, generate_columns
    from models.demo_labels import label_records
    from streamscore.harness.labels import produce_labels

    truth = draw_labels(generate_columns(len(sent), plan.seed, drift), plan.seed)
    stats = produce_labels(settings, label_records(sent, truth, plan))
    print(f"produced {stats['produced']} labels to {settings.topic('labels').name} "
          f"(delay {plan.delay_ms} ms, {plan.flip_rate:.0%} flipped after {plan.flip_after})")
