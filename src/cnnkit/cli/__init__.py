"""Command line: ``cnnkit SUBCOMMAND ...``.

One small module per subcommand group; each exposes ``register(subparsers)`` which adds its
parsers and sets ``func`` (a callable taking the parsed namespace and returning an exit code).
The CLI only parses flags, calls the Python API and prints: no logic lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..errors import CnnkitError, Interrupted, suggest
from ..io import silence_stdout, stdout_is_devnull

# Modules under cnnkit.cli that register subcommands, in the order `cnnkit --help` lists them.
COMMAND_MODULES = [
    "train",
    "lr_find",
    "evaluate",
    "predict",
    "compare",
    "models",
    "datasets",
    "pack",
    "inspect",
    "show_batch",
    "classic",
    "transfer",
    "summary",
    "bench",
    "explain",
    "lectures",
    "deploy",
]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the problem, a suggestion for a misspelt choice, where to look.

    argparse's own error prints the whole usage block first; for a typo that buries the one line
    that matters.
    """

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
            message = message[: m.start()] + f"invalid choice {m.group(1)!r}; {suggest(m.group(1), choices)}"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="cnnkit",
        description="Image classification with convolutional neural networks.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for mod in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{mod}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cnnkit`` console script; returns the process exit code.

    This is the one boundary where errors become messages: a :class:`CnnkitError` (a user mistake)
    prints its message and hint; OS errors name the file; Ctrl-C and a closed pipe end quietly with
    the conventional codes (130, 141). ``--debug`` (or CNNKIT_DEBUG=1) re-raises with the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # `cnnkit` alone does the main job: train the default model on the default data.
        argv = ["train"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a usage error (2) or --help (0): return the code like any other outcome
        return e.code if isinstance(e.code, int) else 0
    if args.version:
        from .._version import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 0
    debug = args.debug or os.environ.get("CNNKIT_DEBUG") == "1"
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (`cnnkit predict ... | head -2`): stop writing, no traceback.
        silence_stdout()
        return 141
    except SystemExit as e:
        # rich's Console handles a broken pipe itself: stdout to /dev/null, then SystemExit(1).
        if e.code == 1 and stdout_is_devnull():
            return 141
        raise
    except KeyboardInterrupt as e:
        if debug:
            raise
        print(f"\n{e}" if isinstance(e, Interrupted) else "\ninterrupted", file=sys.stderr)
        return 130
    except CnnkitError as e:
        if debug:
            raise
        return _report(str(e), e.exit_code)
    except OSError as e:
        if debug:
            raise
        return _report(_os_message(e), 1)
    except MemoryError:
        if debug:
            raise
        return _report("out of memory", 1, "use a smaller --batch-size or --input-size")
    except RecursionError:
        raise
    except Exception as e:  # a bug in cnnkit, not a user mistake: one line, and how to see more
        if debug:
            raise
        return _report(f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", 1,
                       "this is a bug in cnnkit; run again with --debug for the traceback and report it")  # fmt: skip


def _report(message: str, code: int, hint: str | None = None) -> int:
    with contextlib.suppress(BrokenPipeError):
        print(f"error: {message}" + (f"\n  hint: {hint}" if hint else ""), file=sys.stderr)
    return code


def _os_message(e: OSError) -> str:
    """``PermissionError(13, 'Permission denied', 'out/x.png')`` as one line that names the file."""
    where = e.filename if e.filename is not None else ""
    what = e.strerror or str(e) or type(e).__name__
    if isinstance(e, IsADirectoryError):
        what += " (a folder was given where a file is expected)"
    elif isinstance(e, NotADirectoryError):
        what += " (a file was given where a folder is expected)"
    return f"{where}: {what}" if where else what


def exit_main() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        code = 141
    sys.exit(code)
