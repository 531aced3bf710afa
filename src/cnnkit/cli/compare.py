"""``cnnkit compare RUN_DIR...``: a table of runs and accuracy against MACs and parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare runs: table, accuracy vs MACs and vs parameters")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    p.add_argument("-o", "--out", default="compare", metavar="DIR", help="output folder (default ./compare/)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which evaluation to read (default test)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape  # run folder names are text, not markup
    from rich.table import Table

    from ..evaluate import compare_runs

    rows = compare_runs(args.run_dirs, args.out, split=args.split)

    def pct(v: float | None) -> str:
        return "" if v is None else f"{v:.2%}"

    # Top-5 only means something with more than five classes; the column goes when no run has them.
    top5 = any(r.get("top5") is not None for r in rows)
    t = Table(show_header=True, header_style="bold")
    cols = ("run", "model", "params", "MACs", "accuracy") + (("top-5",) if top5 else ()) + (
        "train time", "acc / M params", "from")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col in ("run", "model", "from") else "right", no_wrap=col == "run")
    for r in rows:
        secs = r.get("train_seconds")
        t.add_row(escape(r["name"]), escape(r["model"]), f"{r['params']:,}", f"{r['macs']:,}", pct(r["acc"]),
                  *((pct(r["top5"]) if r.get("top5") is not None else "-",) if top5 else ()),
                  "" if secs is None else f"{secs:.1f} s", "" if r["acc_per_mparam"] is None else f"{r['acc_per_mparam']:.2f}",
                  escape(r["source"]))  # fmt: skip
    # Piped output has no terminal width to respect: do not squeeze run names into "lenet…".
    Console(width=None if sys.stdout.isatty() else 160).print(t)
    out = Path(args.out)
    print(f"written to {out / 'compare.csv'}, {out / 'acc_vs_macs.png'}, {out / 'acc_vs_params.png'}")
    return 0
