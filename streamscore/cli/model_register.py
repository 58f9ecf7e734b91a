"""``streamscore models register``: an ONNX model into the registry, with a card the user wrote (``--card``)
or one written for them from the event schema and a training sample (``--schema`` / ``--subject``)."""

from __future__ import annotations

import argparse
import json

from streamscore.cli.arg_types import finite_float
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import InputError


def add_parser(actions) -> argparse.ArgumentParser:
    parser = actions.add_parser("register", help="add an ONNX model to the registry, with its card or one "
                                                 "written from the event schema and a training sample")
    parser.add_argument("--onnx", default=None, help="the ONNX file")
    parser.add_argument("--card", default=None, help="its model card (model.json with name and version)")
    parser.add_argument("--training-sample", default=None, help="JSON lines of events (drift profile, ranges)")
    parser.add_argument("--model", default=None, metavar="NAME:VERSION", help="with --schema/--subject")
    parser.add_argument("--schema", default=None, metavar="FILE.avsc", help="the events' Avro schema (registered "
                                                                            "under --subject when given)")
    parser.add_argument("--subject", default=None, help="the events' Schema Registry subject (TOPIC-value)")
    parser.add_argument("--subject-version", type=int, default=None, help="default: the latest")
    parser.add_argument("--features", default=None, help="comma-separated event fields, in the model's column order")
    parser.add_argument("--categorical", default="", help="which of the features are categories (string/enum)")
    parser.add_argument("--id-field", default="event_id", help="the event id field (a string)")
    parser.add_argument("--time-field", default=None, help="the event time field (long epoch ms; default: the "
                                                           "Kafka timestamp)")
    parser.add_argument("--label-field", default=None, help="a 0/1 field of the sample: AUC and accuracy on it")
    parser.add_argument("--threshold", type=finite_float, default=0.5, help="label = score >= threshold (default 0.5)")
    return parser


def register_model(args: argparse.Namespace, settings: Settings) -> int:
    if args.schema or args.subject:
        model = _register_from_schema(args, settings)
    elif args.onnx and args.card:
        from models.register import register_model as register_files

        model = register_files(args.onnx, args.card, args.registry_dir, args.training_sample)
    else:
        raise InputError("models register needs --onnx FILE and --card FILE, or --onnx FILE --schema FILE.avsc "
                         "(or --subject S) --model NAME:VERSION --features a,b,c --training-sample FILE")
    profile = "with a drift profile" if model.card.drift_profile else "without a drift profile"
    binding = model.card.event_schema
    source = f", events {binding.name}" + (f" ({binding.subject} v{binding.version})" if binding.subject else "") \
        if binding else ""
    print(f"registered {model.card.ref} at {model.directory} ({profile}{source})")
    return 0


def _register_from_schema(args: argparse.Namespace, settings: Settings):
    from models.card_builder import CardRequest
    from models.register import register_from_schema
    from models.registry import parse_ref

    missing = [flag for flag, value in (("--onnx", args.onnx), ("--model", args.model),
                                        ("--features", args.features), ("--training-sample", args.training_sample))
               if not value]
    if missing:
        raise InputError(f"models register --schema/--subject also needs {', '.join(missing)}")
    ref = parse_ref(args.model)
    request = CardRequest(name=ref.name, version=ref.version, binding=_binding(args, settings),
                          features=_names(args.features), categorical=_names(args.categorical),
                          label_field=args.label_field, threshold=args.threshold)
    return register_from_schema(args.onnx, request, args.training_sample, args.registry_dir)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def _binding(args: argparse.Namespace, settings: Settings):
    """The card's event binding: the .avsc (registered under --subject if given) or the subject's version."""
    from models.event_binding import EventBinding

    subject, version, schema = args.subject, args.subject_version, None
    if args.schema:
        try:
            with open(args.schema, encoding="utf-8") as handle:
                schema = json.load(handle)
        except UnicodeDecodeError as exc:
            raise InputError(f"--schema {args.schema}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                             f"an Avro schema is a JSON document") from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"--schema {args.schema}: {getattr(exc, 'strerror', None) or exc}") from exc
    if schema is not None and version is not None:
        raise InputError("--subject-version picks a registered version; with --schema the card binds that file")
    if subject:
        from connectors.schema_registry import SchemaRegistry, register_subject

        registry = SchemaRegistry(settings.schema_registry)
        if schema is not None:  # the file given, registered (IncompatibleSchema: the registry's rule says why)
            register_subject(registry, subject, schema)
            version = registry.lookup(subject, schema).version
        else:
            found = registry.version(subject, "latest" if version is None else version)
            schema, version = found.schema, found.version
    return EventBinding(schema=schema, id_field=args.id_field, time_field=args.time_field, subject=subject,
                        version=version if subject else None)
