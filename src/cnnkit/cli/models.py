"""``cnnkit models``: the model registry as a table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models cnnkit can build")
    p.add_argument("--filter", default="*", help="glob on the name, e.g. 'resnet*'")
    p.add_argument("--family", help="only this family (lenet, resnet, ...)")
    p.add_argument("--no-params", action="store_true", help="skip counting parameters (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
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
    t = Table(show_header=True, header_style="bold")
    cols = ("name", "left"), ("family", "left"), ("params", "right"), ("input", "left"), ("recipe", "left"), ("description", "left")
    for col, just in cols:
        t.add_column(col, justify=just)
    for n in names:
        e = model_entry(n)
        params = ""
        if not args.no_params:
            with torch.device("meta"):  # count without allocating or initialising weights
                params = f"{count_params(create_model(n, num_classes=10 if e.default_input[1] < 64 else 1000)):,}"
        # The training options `cnnkit train` sets for this model unless given (see TrainConfig auto fields).
        t.add_row(n, e.family, params, "x".join(map(str, e.default_input)), as_flags(e.recipe), e.description)
    Console().print(t)
    return 0
