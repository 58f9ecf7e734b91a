"""The ``streamscore`` command. Every failure the user can cause prints one line and exits non-zero.

Each command group is a module of this package that registers its own subcommands, with only
their own flags, and a handler ``(args, settings) -> exit code`` for each.
"""

from __future__ import annotations

import argparse
import sys

from streamscore.cli import bench, chaos, demo, drift, jobs, models, produce, retrain, stack, topics
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.logs import configure_logging

EXIT_ERROR = 1
EXIT_USAGE = 2
COMMAND_GROUPS = (stack, topics, produce, demo, jobs, models, drift, retrain, bench, chaos)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, no usage dump
        print(f"streamscore: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamscore", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                        help="structured log level (env STREAMSCORE_LOG_LEVEL, default info)")
    parser.add_argument("--log-format", choices=["json", "console"], default=None,
                        help="logs on stderr as JSON lines or for a terminal "
                             "(env STREAMSCORE_LOG_FORMAT, default json)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line; a group that passes its arguments through (``bench``) gets the rest."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "pass_through", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.passed_through = rest
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    configure_logging(fmt=args.log_format, level=args.log_level)
    try:
        settings = load_settings()
        return args.handler(args, settings)
    except StreamscoreError as exc:
        print(f"streamscore: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("streamscore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `streamscore consume scored | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
