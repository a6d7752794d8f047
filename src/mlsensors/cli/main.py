"""Entry point of the `mlsensors` command.

Each sub-command lives in its own module with a `register(subparsers)` function that
adds its parser and sets `run`. Errors a user can cause arrive here as MlsensorsError
and leave as one line on stderr with exit status 1; usage errors exit with 2; no
traceback is ever shown for either.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mlsensors.errors import MlsensorsError

COMMANDS = (
    "detect",
    "person",
    "serve",
    "models",
    "bench",
    "read",
    "id",
    "voice",
    "audit",
    "datasheet",
)
"""Modules of mlsensors.cli that provide a sub-command, in the order `--help` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlsensors",
        description="A private ML sensor: faces, facing and IDs from a camera, nothing else.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mlsensors.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except MlsensorsError as e:
        print(f"mlsensors: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
