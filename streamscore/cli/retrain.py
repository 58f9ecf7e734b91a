"""``streamscore retrain --model NAME [--follow] [--auto-promote AGREEMENT]``: answer retraining triggers.

The protocol (pending triggers, training data, shadow attach, the promotion decision) is
``streamscore.lifecycle.retraining``; this module is its flags and the ``--follow`` loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from jobs.model_router import DEFAULT_ACTIVATION_DELAY_MS
from models.promotion_policy import DEFAULT_MIN_LABELLED, DEFAULT_PROMOTE_AFTER
from streamscore.cli.arg_types import positive_float
from streamscore.cli.models import activation_delay_ms
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.lifecycle.retraining import (
    DEFAULT_MIN_LABELLED_TO_TRAIN,
    DEFAULT_RECENT,
    TOPIC_ROLES,
    TRIGGER,
    RetrainOptions,
    answer_once,
)


def register(sub) -> None:
    retrain = sub.add_parser("retrain", help="answer retraining triggers on control: train a challenger on recent "
                                             "labelled events, register it, attach it in shadow (promotes only "
                                             "with --auto-promote)")
    retrain.add_argument("--model", required=True, help="model NAME whose triggers to answer")
    retrain.add_argument("--follow", action="store_true", help="keep waiting for new triggers")
    retrain.add_argument("--min-labelled", type=int, default=DEFAULT_MIN_LABELLED_TO_TRAIN,
                         help="refuse with fewer labelled events")
    retrain.add_argument("--recent", type=int, default=DEFAULT_RECENT, help="events read from the end of events")
    retrain.add_argument("--registry-dir", default=None)
    retrain.add_argument("--activation-delay-ms", type=activation_delay_ms, default=DEFAULT_ACTIVATION_DELAY_MS,
                         help="the shadow attach takes effect this long after publication")
    retrain.add_argument("--poll-s", type=positive_float, default=2.0,
                         help="--follow: seconds between reads of control")
    retrain.add_argument("--auto-promote", type=_agreement, default=None, metavar="AGREEMENT",
                         help="promote the challenger in shadow when its label agreement with the champion is >= "
                              "AGREEMENT (0 < AGREEMENT <= 1) and its accuracy is not below the champion's")
    retrain.add_argument("--promote-after", type=int, default=DEFAULT_PROMOTE_AFTER,
                         help="--auto-promote: shadowed events needed before deciding")
    retrain.add_argument("--promote-min-labelled", type=int, default=DEFAULT_MIN_LABELLED,
                         help="--auto-promote: labelled shadowed events needed to compare accuracies")
    retrain.add_argument("--keep-shadow", action="store_true", help="--auto-promote: do not detach the shadow "
                                                                     "after promoting it")
    retrain.add_argument("--model-params", type=_json_object, default=None, metavar="JSON",
                         help="the challenger's HistGradientBoostingClassifier hyper-parameters over the parent's, "
                              "e.g. '{\"max_iter\": 120}' (needed for a parent registered from ONNX)")
    for key, role in TOPIC_ROLES.items():
        retrain.add_argument(f"--{key}-topic", default=None, help=f"default: the settings' {role} topic")
    retrain.set_defaults(handler=run)


def _agreement(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"AGREEMENT must be a number in (0, 1], got {text!r}")
    return value


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"max_iter\": 120}}', got {text!r}")
    return value


def options_from(args: argparse.Namespace) -> RetrainOptions:
    fields = {f.name for f in dataclasses.fields(RetrainOptions)}
    return RetrainOptions(**{name: value for name, value in vars(args).items() if name in fields})


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = options_from(args)
    options.check()  # refuse bad --promote-* values before reading anything
    topics = {key: getattr(args, f"{key}_topic") or settings.topic(role).name for key, role in TOPIC_ROLES.items()}
    said: set[str] = set()  # the last decision line printed: --follow does not repeat it
    if not options.follow:
        return 0 if answer_once(options, settings, topics, quiet_if_none=False, said=said) else 1
    promoting = f", promoting at agreement >= {options.auto_promote}" if options.auto_promote is not None else ""
    print(f"following {topics['control']} for {TRIGGER} of {options.model}{promoting} (Ctrl-C stops)", flush=True)
    while True:
        try:
            answer_once(options, settings, topics, quiet_if_none=True, said=said)
        except StreamscoreError as exc:  # a broker or registry hiccup, a publish that took too long: a
            line = f"retrain: {exc}; trying again every {args.poll_s:g} s"  # follower keeps following
            if line not in said:
                said.clear()
                said.add(line)
                print(line, file=sys.stderr, flush=True)
        time.sleep(args.poll_s)
