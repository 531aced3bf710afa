"""``cnnkit datasets``: the dataset registry as a table (name, classes, image shape, splits, files, status)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the datasets cnnkit can load and where their files are")
    p.add_argument("--root", help="where standard datasets live (default: $CNNKIT_DATA or ~/.cache/cnnkit/data)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..data import list_datasets
    from ..data.registry import dataset_files, default_data_root

    if args.root is not None:
        _check_root(args.root)
    root = args.root or default_data_root()
    console = Console()
    rows = []
    for e in list_datasets():
        splits = ", ".join(f"{k} {v:,}" for k, v in e.split_sizes.items())
        where, status = dataset_files(e, root)
        rows.append([e.name, str(e.num_classes), "x".join(map(str, e.image_shape)), splits,
                     _relative(e, where, root), status, e.description])  # fmt: skip

    def table(described: bool) -> Table:
        t = Table(show_header=True, header_style="bold")
        t.add_column("name", no_wrap=True)
        t.add_column("classes", justify="right")
        t.add_column("image", no_wrap=True)
        t.add_column("splits")
        # Paths are short (relative to the root, printed once below) and never wrap: a path folded
        # mid-word ("cifar-1" / "0-batches-py") reads as two names. The splits and descriptions wrap.
        t.add_column("files", no_wrap=True)
        t.add_column("status", no_wrap=True)
        if described:
            t.add_column("description")  # the column that wraps when the terminal is narrow
        for r in rows:
            t.add_row(*(r if described else r[:-1]))
        return t

    # The descriptions only when they get a readable width (about 30 columns) beside the rest.
    bare = console.measure(table(False)).maximum
    console.print(table(console.width - bare >= 33))
    print(f"files are relative to the data root {root} (--data-root, $CNNKIT_DATA); missing ones are fetched by "
          "`cnnkit train --data NAME --download`")  # fmt: skip
    print("your own images: --data folder:PATH (one subfolder per class, or train/ val/ test/ folders of them) "
          "or --data csv:FILE (path,label rows)")  # fmt: skip
    return 0


def _check_root(root: str) -> None:
    """``--root`` must be a folder (or not exist yet): a file there means a mistyped path."""
    from pathlib import Path

    from ..errors import ConfigError

    if not root.strip():
        raise ConfigError("--root is empty", hint="give the folder holding the standard datasets, or leave it out")
    p = Path(root).expanduser()
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--root {root!r} is a file, not a folder", hint="give the folder holding the datasets")


def _relative(entry: object, where: str, root: str) -> str:
    """A dataset's folder relative to the data root; its file names when they lie in the root itself."""
    import os

    if where == "built in":
        return where
    rel = os.path.relpath(where, root)
    if rel != ".":
        return rel + "/"
    return "\n".join(os.path.basename(f) for f in entry.files(root))  # type: ignore[attr-defined]
