"""Command line: ``cnnkit SUBCOMMAND ...``.

One small module per subcommand group; each exposes ``register(subparsers)`` which adds its
parsers and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
The CLI only parses flags, calls the Python API and prints: no logic lives here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import CnnkitError

# Modules under cnnkit.cli that register subcommands, in the order `cnnkit --help` lists them.
COMMAND_MODULES = [
    "train",
    "evaluate",
    "predict",
    "compare",
    "models",
    "datasets",
    "show_batch",
    "classic",
    "transfer",
    "summary",
    "explain",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit",
        description="Image classification with convolutional neural networks.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnkit`` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # `cnnkit` alone does the main job: train the default model on the default data.
        argv = ["train"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    debug = args.debug or os.environ.get("CNNKIT_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except CnnkitError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def exit_main() -> None:
    sys.exit(main())
