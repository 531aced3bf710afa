"""``cnnkit inspect DATA``: class balance, image formats, duplicates and leakage, suspect labels, auto choices."""

from __future__ import annotations

import argparse
import sys

from ._args import add_command, add_data_split, int_in

HELP = "check a dataset before trusting a score: balance, formats, duplicates/leakage, suspect labels"
# What a careful user checks before trusting a score (shown by `cnnkit inspect --help`).
DESCRIPTION = " ".join("""
Look at a dataset as `cnnkit train --data DATA` would split it: images per class, stored sizes and modes,
exact and near-duplicate images within and across train/val/test (leakage), images that are probably
mislabelled (cross-validated predictions of a quick model), and the input size and augmentation `auto`
would choose. Prints tables; -o writes an HTML page with thumbnails; --json.
""".split())  # noqa: SIM905 (prose wrapped to the line length)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "inspect", run, HELP, DESCRIPTION)
    p.add_argument(
        "data", nargs="?", default="digits", help="dataset name, folder:PATH or csv:FILE (default: digits)"
    )
    p.add_argument("-o", "--output", default=None, metavar="FILE.html",
                   help="also write an HTML page with thumbnails (an existing file is replaced only if inspect wrote "
                   "it, or with --overwrite)")  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing -o file that inspect did not write"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")
    p.add_argument(
        "--model", default="lenet5", help="the model whose input size `auto` is for (default: lenet5)"
    )
    p.add_argument("--input-size", type=int_in(1, 2048), default=None,
                   help="the side training would use (default: as cnnkit train chooses for --model)")  # fmt: skip
    p.add_argument(
        "--top", type=int_in(1, 1000), default=30, help="suspect labels to list, 1-1000 (default: 30)"
    )
    add_data_split(p)
    p.add_argument("--memory-budget-mb", type=int_in(0, None), default=4096,
                   help="folder/CSV data: decode into memory up to this size (default: 4096); inspect needs it all")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json

    from ..config import TrainConfig
    from ..data import load_dataset
    from ..data.inspect import inspect_dataset, json_ready
    from ..data.inspect_page import check_page_target, print_report, write_html
    from ..engine.train import resolve_config

    # Every option is checked before the data is read: a bad -o or model fails in a moment.
    inputs = (args.data.split(":", 1)[1],) if args.data.startswith(("csv:", "folder:")) else ()
    if args.output is not None:
        check_page_target(args.output, args.overwrite, inputs)
    cfg = resolve_config(TrainConfig.from_dict({"name": "inspect", "model": args.model, "data": args.data,
                                                "input_size": args.input_size, "val_split": args.val_split,
                                                "test_split": args.test_split, "seed": args.seed}))  # fmt: skip

    def progress(line: str) -> None:  # to stderr: stdout holds the report (or the JSON)
        print(f"inspect: {line}", file=sys.stderr, flush=True)

    data = load_dataset(args.data, val_split=args.val_split, test_split=args.test_split, seed=args.seed,
                        root=args.data_root, download=args.download, strict=args.strict,
                        memory_budget_mb=args.memory_budget_mb)  # fmt: skip
    for line in data.info.get("warnings", []):
        progress(f"warning: {line}")
    report = inspect_dataset(data, input_size=cfg.input_size, seed=args.seed, top=args.top, progress=progress)
    if args.json:
        print(json.dumps(json_ready(report), indent=2))
    else:
        print_report(report)
    if args.output is not None:
        path = write_html(report, args.output, overwrite=args.overwrite)
        (progress if args.json else print)(f"wrote {path}")
    return 0
