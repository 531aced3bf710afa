"""``cnnkit datasets``: the dataset registry as a table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the datasets cnnkit can load")
    p.add_argument("--root", help="where standard datasets live (default: $CNNKIT_DATA or ~/.cache/cnnkit/data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..data import list_datasets
    from ..data.registry import default_data_root

    root = args.root or default_data_root()
    t = Table(show_header=True, header_style="bold")
    for col in ("name", "classes", "image", "splits", "description"):
        t.add_column(col)
    for e in list_datasets():
        splits = ", ".join(f"{k} {v:,}" for k, v in e.split_sizes.items())
        t.add_row(e.name, str(e.num_classes), "x".join(map(str, e.image_shape)), splits, e.description)
    Console().print(t)
    print(f"standard datasets are looked for in {root}; also: folder:PATH (class-per-subfolder) and csv:FILE")
    return 0
