"""The ``bwsk`` command line: one subcommand module per job, errors as one line + exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from bwsk.errors import BwskError

# Subcommand modules; each defines ``register(subparsers)`` which sets ``func`` on its parser.
SUBCOMMANDS = ("term", "analyze", "train", "plan")


def build_parser() -> argparse.ArgumentParser:
    from bwsk import __version__

    parser = argparse.ArgumentParser(
        prog="bwsk",
        description="Prove where a model preserves (S) or erases (K) information; "
        "train it reversibly; plan its sharding.",
    )
    parser.add_argument("--version", action="version", version=f"bwsk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"bwsk.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bwsk.cli.{name}":
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BwskError as exc:
        print(f"bwsk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bwsk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
