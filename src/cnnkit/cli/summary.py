"""``cnnkit summary MODEL|RUN_DIR`` and ``cnnkit compare-arch MODEL...``: the per-layer table."""

from __future__ import annotations

import argparse

from ._args import add_command, int_in


def _input_size(text: str | None) -> tuple[int, ...] | None:
    """``--input`` parsed and bounded before any model is built, with a message that names the option."""
    from ..analyze.table import parse_input_size
    from ..errors import ConfigError

    try:
        return parse_input_size(text)
    except ConfigError as e:
        raise ConfigError(f"--input: {e.message}", hint=e.hint) from None


MAX_CLASSES = 100_000  # more than any dataset has (ImageNet-21k: 21,841); a bigger number is a typo


def _formats(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", dest="fmt", action="store_const", const="json", help="print JSON")
    g.add_argument("--csv", dest="fmt", action="store_const", const="csv", help="print CSV")
    g.add_argument(
        "--markdown", dest="fmt", action="store_const", const="markdown", help="print a Markdown table"
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "summary", run, "per-layer shapes, parameters, MACs, memory and receptive field of a model",
                    "Per-layer output shape, parameters, MACs, activation memory and receptive field "
                    "(size, jump, start) of a model name or a run folder, measured on one forward pass.")  # fmt: skip
    p.add_argument("model", metavar="MODEL|RUN_DIR", help="a model name (`cnnkit models`) or a run folder")
    p.add_argument(
        "--input", help="input size C x H x W, e.g. 3x224x224 (or HxW, or H); default: the model's"
    )
    p.add_argument("--batch", type=int_in(1, 1_000_000), default=1,
                   help="batch size for the per-batch totals (default 1)")  # fmt: skip
    p.add_argument(
        "--depth", type=int_in(0, 100), help="fold blocks deeper than this into one row (default: every layer)"
    )
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                   help="element type for the memory figures (default: the model's, float32)")  # fmt: skip
    p.add_argument(
        "--num-classes", type=int_in(1, MAX_CLASSES),
        help="classes of a model built by name (default 1000, 10 below 64 px)",
    )  # fmt: skip
    _formats(p)
    p.set_defaults(fmt=None)

    c = add_command(sub, "compare-arch", run_compare,
                    "several models side by side: parameters, MACs, activation memory, receptive field")
    c.add_argument("models", nargs="+", metavar="MODEL", help="model names or run folders")
    c.add_argument("--input", help="one input size for all (default: each model's own)")
    c.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"))
    c.add_argument("--num-classes", type=int_in(1, MAX_CLASSES), help="classes of models built by name")
    _formats(c)
    c.set_defaults(fmt=None)


def _emit(obj, fmt: str | None) -> None:
    if fmt == "json":
        print(obj.to_json())
    elif fmt == "csv":
        print(obj.to_csv(), end="")
    elif fmt == "markdown":
        print(obj.to_markdown(), end="")
    else:
        import sys

        from rich.console import Console

        # Piped into a file or a pager, keep the table's full width instead of rich's default 80 columns.
        Console(highlight=False, width=None if sys.stdout.isatty() else 250).print(obj)


def run(args: argparse.Namespace) -> int:
    from ..analyze import summary

    s = summary(args.model, input_size=_input_size(args.input), batch=args.batch, depth=args.depth, dtype=args.dtype,
                num_classes=args.num_classes)  # fmt: skip
    _emit(s, args.fmt)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ..analyze import compare_arch

    _emit(
        compare_arch(args.models, input_size=_input_size(args.input), num_classes=args.num_classes, dtype=args.dtype),
        args.fmt,
    )
    return 0
