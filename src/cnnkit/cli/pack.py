"""``cnnkit pack DATA -o DIR``: a dataset as WebDataset-style tar shards, for ``--data shards:DIR``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from ._args import add_command, add_data_split, int_in

PROGRESS_FROM = 5_000  # samples: smaller packs take a second or two, a bar would only flicker


HELP = "write a dataset as tar shards plus an index, to stream with --data shards:DIR"
DESCRIPTION = (
    "Write DATA's train/val/test splits (split as `cnnkit train` would with the same --val-split, "
    "--test-split and --seed) as WebDataset-style tar shards (KEY.png or the source file's bytes, KEY.cls, "
    "KEY.id) plus DIR/index.json (classes, counts, per-shard sha256) and DIR/samples.npz (where each sample "
    "is). Train from it with `cnnkit train --data shards:DIR`."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "pack", run, HELP, DESCRIPTION)
    p.add_argument(
        "data",
        metavar="DATA",
        help="what to pack, as for cnnkit train --data: digits, folder:PATH, csv:FILE, ...",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="folder to write (created; must be new or empty)"
    )
    p.add_argument("--shard-size", type=int_in(1, 10_000_000), default=10_000,
                   help="samples per tar shard (default 10000)")  # fmt: skip
    p.add_argument("--input-size", type=int_in(1, 2048), default=None,
                   help="store images resized to this side in pixels (default: their own size; training resizes)")  # fmt: skip
    p.add_argument("--encoding", choices=("png", "raw"), default="png",
                   help="png: PNG (or the source files' own bytes); raw: uint8 pixels (.u8), larger but no decoding "
                   "(default png)")  # fmt: skip
    add_data_split(p)
    p.add_argument("--memory-budget-mb", type=int_in(0), default=4096,
                   help="standard datasets: refuse an --input-size needing more memory than this (default 4096)")  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true", help="replace a pack already in DIR (nothing else is replaced)"
    )
    p.add_argument("--quiet", action="store_true", help="print only the summary line")


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator:
    """A rich progress bar with ETA on stderr, as a ``progress(done, total)`` callback (or ``None``)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("packing"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        task = bar.add_task("pack", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.packing import check_target, pack_dataset
    from ..data.registry import dataset_entry, load_dataset
    from ..errors import ConfigError

    if args.val_split + args.test_split >= 1.0:
        raise ConfigError(f"--val-split + --test-split = {args.val_split + args.test_split:g} leaves no training data",
                          hint="lower one of them")  # fmt: skip
    out = Path(args.output).expanduser()
    check_target(out, args.overwrite)  # before loading anything: a wrong -o fails at once
    # Files stay files (their own bytes are stored, nothing is decoded into memory): a budget of 0 makes
    # folder:/csv: data stream; standard datasets are in memory anyway and keep the user's budget.
    files_source = dataset_entry(args.data) is None and args.data.split(":", 1)[0] in ("folder", "csv")
    ds = load_dataset(args.data, input_size=args.input_size, val_split=args.val_split, test_split=args.test_split,
                      seed=args.seed, root=args.data_root, download=args.download, strict=args.strict,
                      memory_budget_mb=0 if files_source else args.memory_budget_mb, cache=False)  # fmt: skip
    if not args.quiet:
        for line in ds.info.get("warnings", []):
            print(f"warning: {line}")
    total = len(ds.train) + len(ds.val) + len(ds.test)
    split = {"val_split": args.val_split, "test_split": args.test_split, "seed": args.seed,
             "method": ds.info.get("split", "the source's own splits")}  # fmt: skip
    with _progress(not args.quiet and total >= PROGRESS_FROM) as progress:
        index = pack_dataset(ds, out, shard_size=args.shard_size, encoding=args.encoding,
                             resized=args.input_size is not None, overwrite=args.overwrite,
                             extra={"split": split, "skipped": len(ds.info.get("skipped", []))}, progress=progress)  # fmt: skip
    shards = sum(len(index["splits"][s]["shards"]) for s in ("train", "val", "test"))
    size = sum(sh["bytes"] for s in ("train", "val", "test") for sh in index["splits"][s]["shards"])
    counts = " / ".join(f"{index['splits'][s]['count']:,} {s}" for s in ("train", "val", "test"))
    print(
        f"packed {args.data} into {out}: {counts} in {shards} shards ({size / 2**20:,.1f} MB); "
        f"train with --data shards:{args.output}"
    )
    return 0
