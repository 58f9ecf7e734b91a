"""``streamscore models ACTION``: the on-disk registry (list, show, build-demo, optimize, register) and the
model lifecycle on the control topic (promote, rollback, shadow-attach, shadow-detach, canary).

Each action is a subcommand of its own with only its own flags (``streamscore models optimize --help``).
The lifecycle protocol is ``streamscore.lifecycle.control``; this module is its flags and its lines.
"""

from __future__ import annotations

import argparse
import json

from jobs.model_router import DEFAULT_ACTIVATION_DELAY_MS
from streamscore.cli import model_register
from streamscore.cli.arg_types import finite_float
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.vocabulary import LifecycleAction


def activation_delay_ms(raw: str) -> int:
    """argparse type of ``--activation-delay-ms``: a change must take effect after it is published (its
    publication must commit within half of the delay), so the delay is > 0."""
    try:
        delay = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {raw!r}") from exc
    if delay <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0 ms, got {delay}")
    return delay

LIFECYCLE_HELP = {
    LifecycleAction.PROMOTE: ("NAME:VERSION", "make VERSION the champion (event time now + the activation delay)"),
    LifecycleAction.ROLLBACK: ("NAME", "go back to the version the latest promotion replaced"),
    LifecycleAction.SHADOW_ATTACH: ("NAME:VERSION", "score every event with VERSION too, on the shadow topic"),
    LifecycleAction.SHADOW_DETACH: ("NAME", "stop shadow scoring"),
    LifecycleAction.CANARY: ("NAME:VERSION", "let VERSION score a share of the events (0 ends the canary)"),
}


def register(sub) -> None:
    models = sub.add_parser("models", help="the model registry and the model lifecycle (promote, shadow, canary)")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=type(models))
    _add_registry_actions(actions)
    for action, (ref, text) in LIFECYCLE_HELP.items():
        parser = actions.add_parser(action.value, help=text)
        parser.add_argument("ref", nargs="?", metavar=ref)
        parser.add_argument("--activation-delay-ms", type=activation_delay_ms, default=DEFAULT_ACTIVATION_DELAY_MS,
                            help="takes effect this long after publication (>= the jobs' own delay)")
        parser.add_argument("--control-topic", default=None, help="default: the settings' control topic")
        if action is LifecycleAction.CANARY:
            parser.add_argument("--percent", type=int, default=None, help="share of events (0..100; 0 ends it)")
        _registry_dir(parser)
        parser.set_defaults(handler=lifecycle)


def _registry_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry-dir", default=None, help="registry root (default: models/)")


def _add_registry_actions(actions) -> None:
    listing = actions.add_parser("list", help="every NAME:VERSION in the registry")
    listing.set_defaults(handler=list_models)
    show = actions.add_parser("show", help="a model card (without its drift profile)")
    show.add_argument("ref", nargs="?", metavar="NAME:VERSION")
    show.set_defaults(handler=show_model)
    build = actions.add_parser("build-demo", help="train and register the demo model (fraud:1.0.0)")
    which_demo = build.add_mutually_exclusive_group()
    which_demo.add_argument("--heavy", action="store_true", help="the MLP fraud-mlp:1.0.0 instead")
    which_demo.add_argument("--sensor", action="store_true", help="the sensor anomaly model sensor:1.0.0 "
                                                                  "(another schema, registered from it)")
    build.set_defaults(handler=build_demo)
    optimize = actions.add_parser("optimize", help="a faster variant of a model, checked on held-out rows")
    optimize.add_argument("ref", nargs="?", metavar="NAME:VERSION")
    which = optimize.add_mutually_exclusive_group()
    which.add_argument("--int8", action="store_true", help="static INT8 quantization")
    which.add_argument("--fp16", action="store_true", help="FP16 conversion (for GPU providers)")
    which.add_argument("--opt-level", choices=["basic", "extended", "all"], help="ONNX Runtime graph level")
    optimize.add_argument("--max-auc-drop", type=finite_float, default=0.01,
                          help="refuse a version whose held-out AUC drops more (default 0.01)")
    optimize.add_argument("--eval-rows", type=int, default=20_000, help="held-out rows (default 20000)")
    optimize.add_argument("--force", action="store_true", help="replace an existing variant")
    optimize.set_defaults(handler=optimize_model)
    register_parser = model_register.add_parser(actions)
    register_parser.set_defaults(handler=model_register.register_model)
    for parser in (listing, show, build, optimize, register_parser):
        _registry_dir(parser)


def lifecycle(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.lifecycle.control import LifecycleChange, apply_change

    action = LifecycleAction(args.action)
    if not args.ref:
        raise StreamscoreError(f"models {action} needs NAME:VERSION (rollback, shadow-detach: NAME)")
    change = LifecycleChange(action, args.ref, control_topic=args.control_topic, registry_dir=args.registry_dir,
                             activation_delay_ms=args.activation_delay_ms, percent=getattr(args, "percent", None))
    print(apply_change(settings, change).line())
    return 0


def list_models(args: argparse.Namespace, settings: Settings) -> int:
    from models.registry import ModelRegistry

    for ref in ModelRegistry(args.registry_dir).list_models():
        print(ref)
    return 0


def show_model(args: argparse.Namespace, settings: Settings) -> int:
    from models.registry import load_model

    if not args.ref:
        raise StreamscoreError("models show needs NAME:VERSION")
    card = load_model(args.ref, root=args.registry_dir).card.to_dict()
    card.pop("drift_profile", None)
    print(json.dumps(card, indent=2))
    return 0


def build_demo(args: argparse.Namespace, settings: Settings) -> int:
    if args.sensor:
        from models.sensor_demo import build_sensor

        model = build_sensor(args.registry_dir)
        print(json.dumps({"directory": str(model.directory), "test_auc": model.card.training.test_auc,
                          "events": model.card.event_schema.name}, indent=2))
        return 0
    if args.heavy:
        from models.build_heavy import build_heavy as build
    else:
        from models.build_demo import build_demo as build
    print(json.dumps(build(args.registry_dir), indent=2, default=str))
    return 0


def optimize_model(args: argparse.Namespace, settings: Settings) -> int:
    from models.optimize import OptimizeOptions
    from models.optimize import optimize_model as optimize

    if not args.ref:
        raise StreamscoreError("models optimize needs NAME:VERSION")
    kind = "int8" if args.int8 else "fp16" if args.fp16 else f"opt-{args.opt_level}" if args.opt_level else None
    if kind is None:
        raise StreamscoreError("models optimize needs one of --int8, --fp16, --opt-level LEVEL")
    options = OptimizeOptions(transformation=kind, max_auc_drop=args.max_auc_drop, eval_rows=args.eval_rows,
                              force=args.force)
    print(json.dumps(optimize(args.ref, options, args.registry_dir), indent=2))
    return 0
