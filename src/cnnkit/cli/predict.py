"""``cnnkit predict RUN_DIR IMAGE_OR_DIR...``: top-k classes with probabilities."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import TTA_MODES
from ._args import add_device, add_run, int_in


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files or folders with a saved run")
    add_run(p)
    p.add_argument("paths", metavar="IMAGE_OR_DIR", nargs="+")
    p.add_argument("--topk", type=int_in(1, 10_000), default=5,
                   help="how many classes to show (default 5; at most the model's number of classes)")  # fmt: skip
    p.add_argument("--tta", nargs="?", const="flip", choices=TTA_MODES,
                   help="average over test-time views: flip (default when given), flip+shift (6 views) or crops "
                   "(AlexNet's ten)")  # fmt: skip
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV: path, class_1, prob_1, ..., error")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..engine.device import select_device
    from ..errors import DataError
    from ..evaluate import predict_files
    from ..run import load_run

    run_ = load_run(args.run_dir, device=select_device(args.device))
    preds = predict_files(run_, args.paths, topk=args.topk, tta=args.tta)
    failed = [p for p in preds if p.error]
    if len(failed) == len(preds):
        # Nothing to show: an error, not a table of failures with a warning per file.
        if len(failed) == 1:
            exists = Path(failed[0].path).exists()
            raise DataError(str(failed[0].error), hint="is it a valid image file?" if exists else "check the path")
        for p in failed:
            print(f"warning: skipped {p.error}", file=sys.stderr)
        raise DataError(f"none of the {len(failed)} images could be read (each is listed above)",
                        hint="are they valid image files?")  # fmt: skip
    if args.json:
        print(json.dumps([{"path": p.path, "top": [{"class": c, "prob": round(v, 6)} for c, v in p.top],
                           **({"error": p.error} if p.error else {})} for p in preds], indent=2))  # fmt: skip
    elif args.csv:
        import csv

        k = max((len(p.top) for p in preds), default=0)
        w = csv.writer(sys.stdout)
        w.writerow(["path"] + [f"{h}_{i}" for i in range(1, k + 1) for h in ("class", "prob")] + ["error"])
        for p in preds:
            cells = [x for c, v in p.top for x in (c, f"{v:.6f}")]
            w.writerow([p.path, *cells, *[""] * (2 * k - len(cells)), p.error or ""])
    else:
        from rich.console import Console
        from rich.markup import escape  # file and class names are text, not markup: "x[/red].png" exists
        from rich.table import Table

        k = max(len(p.top) for p in preds if not p.error)  # --topk is capped at the model's class count
        t = Table(show_header=True, header_style="bold")
        t.add_column("image")
        t.add_column("class")
        t.add_column("prob", justify="right")
        if k > 1:
            # "top-k" only where k is fewer than the classes; otherwise the row ranks every class.
            t.add_column(f"next {k - 1} of the top {k}" if k < run_.meta.num_classes else "the other classes")
        for p in preds:
            if p.error:
                t.add_row(escape(p.path), "[red]unreadable[/red]", "", *((escape(p.error),) if k > 1 else ()))
            else:
                rest = ", ".join(f"{c} {v:.2%}" for c, v in p.top[1:])
                t.add_row(escape(p.path), escape(p.top[0][0]), f"{p.top[0][1]:.2%}", *((escape(rest),) if k > 1 else ()))
        Console().print(t)
    for p in failed:  # some images were read: show those, warn about the rest
        print(f"warning: skipped {p.error}", file=sys.stderr)
    return 0
