"""``cnnkit models``: the model registry as a table."""

from __future__ import annotations

import argparse
import re
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models cnnkit can build")
    p.add_argument("--filter", default="*", help="glob on the name, e.g. 'resnet*'")
    p.add_argument("--family", help="only this family (lenet, resnet, ...)")
    p.add_argument("--no-params", action="store_true", help="skip counting parameters (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..config import as_flags
    from ..errors import ModelError, suggest
    from ..models import count_params, create_model, list_models, model_entry

    if args.family is not None:
        families = sorted({model_entry(n).family for n in list_models()})
        if args.family not in families:
            raise ModelError(f"unknown model family {args.family!r}", hint=suggest(args.family, families))
    names = list_models(args.filter, family=args.family)
    if not names:  # before the table: an empty table would look like a result
        where = f" in family {args.family!r}" if args.family else ""
        raise ModelError(f"no model matches --filter {args.filter!r}{where}",
                         hint="`cnnkit models` lists them all; the filter is a glob such as 'resnet*'")  # fmt: skip
    import shutil

    # Fit the terminal: at 80 columns a description column would wrap one word per line, so it
    # goes below the table's width limit (piped output gets a wide table: nothing to fit).
    width = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 160
    show_desc = width >= 110
    t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    t.add_column("name", no_wrap=True)
    t.add_column("family", no_wrap=True)
    t.add_column("params", justify="right", no_wrap=True)
    t.add_column("input", no_wrap=True)
    t.add_column("recipe (flags train sets unless given)", overflow="fold")
    if show_desc:
        t.add_column("description", min_width=30)
    for n in names:
        e = model_entry(n)
        params = ""
        if not args.no_params:
            with torch.device("meta"):  # count without allocating or initialising weights
                params = (
                    f"{count_params(create_model(n, num_classes=10 if e.default_input[1] < 64 else 1000)):,}"
                )
        # The training options `cnnkit train` sets for this model unless given (see TrainConfig auto fields).
        cells = [n, e.family, params, "x".join(map(str, e.default_input)), as_flags(e.recipe) or "-"]
        t.add_row(*map(escape, cells), *((escape(plain(e.description)),) if show_desc else ()))
    console = Console(width=width)
    if sys.stdout.isatty():
        console.print(t)
    else:  # piped: rich pads every line to the full width; a file or `grep` gets the text without it
        with console.capture() as cap:
            console.print(t)
        sys.stdout.write("".join(line.rstrip() + "\n" for line in cap.get().splitlines()))
    if not show_desc:
        print(f"(descriptions are shown at 110 columns or more; this terminal has {width})")
    return 0


def plain(doc: str) -> str:
    """A docstring's first sentence as plain text: reStructuredText ``literals`` and `roles` unmarked."""
    text = re.sub(r":\w+:`([^`]*)`", r"\1", doc)
    return re.sub(r"`{1,2}([^`]*)`{1,2}", r"\1", text).strip()
