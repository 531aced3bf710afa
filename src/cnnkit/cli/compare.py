"""``cnnkit compare RUN_DIR...``: a table of runs and accuracy against MACs and parameters."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare runs: table, accuracy vs MACs and vs parameters")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+")
    p.add_argument("-o", "--out", default="compare", metavar="DIR", help="output folder (default ./compare/)")
    p.add_argument("--split", choices=("test", "val"), default="test", help="which evaluation to read (default test)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..evaluate import compare_runs

    rows = compare_runs(args.run_dirs, args.out, split=args.split)
    # Piped output has no terminal width to respect: do not squeeze run names into "lenet…".
    console = Console(width=None if sys.stdout.isatty() else 160)
    width = console.width
    # Numbers are never cut ("40,637,0…"): in a narrow terminal the columns worth least go first,
    # whole, and are named under the table; run and model names fold onto more lines last.
    cols = _columns(rows)
    dropped: list[str] = []
    while _width(cols, dropped) > width and len(dropped) < len(_DROP_ORDER):
        dropped.append(_DROP_ORDER[len(dropped)])
    need = _width(cols, dropped, name_width=8)
    if need > width:  # even the core columns do not fit: let the terminal wrap lines, not cut numbers
        console.width = need
    console.print(_table(cols, dropped))
    if "from" in dropped:
        sources = sorted({r["source"] for r in rows})
        print("accuracy from " + (f"{sources[0]} of each run" if len(sources) == 1 else
                                  "; ".join(f"{r['name']}: {r['source']}" for r in rows)))  # fmt: skip
    if dropped[1:]:
        print(f"left out to fit {width} columns: {', '.join(dropped[1:])} (all columns are in compare.csv)")
    out = Path(args.out)
    print(f"written to {out / 'compare.csv'}, {out / 'acc_vs_macs.png'}, {out / 'acc_vs_params.png'}")
    return 0


# Which columns a narrow terminal loses first: where the numbers were read, then derived figures.
_DROP_ORDER = ("from", "acc / M params", "train time", "top-5")
_NAMES = ("run", "model")  # the only columns that may fold


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The table's cells, column by column, as plain text."""

    def pct(v: float | None) -> str:
        return "" if v is None else f"{v:.2%}"

    cols = {
        "run": [r["name"] for r in rows],
        "model": [r["model"] for r in rows],
        "params": [f"{r['params']:,}" for r in rows],
        "MACs": [f"{r['macs']:,}" for r in rows],
        "accuracy": [pct(r["acc"]) for r in rows],
        "top-5": [pct(r["top5"]) if r.get("top5") is not None else "-" for r in rows],
        "train time": ["" if r.get("train_seconds") is None else f"{r['train_seconds']:.1f} s" for r in rows],
        "acc / M params": ["" if r["acc_per_mparam"] is None else f"{r['acc_per_mparam']:.2f}" for r in rows],
        "from": [r["source"] for r in rows],
    }
    # Top-5 only means something with more than five classes; the column goes when no run has them.
    if not any(r.get("top5") is not None for r in rows):
        del cols["top-5"]
    return cols


def _width(cols: dict[str, list[str]], dropped: list[str], name_width: int | None = None) -> int:
    """Terminal columns the table takes, names whole (or folded to ``name_width``).

    Counted here rather than with rich's ``Console.measure``: its minimum lets no-wrap columns
    shrink, which is exactly what must not happen to the numbers.
    """
    from rich.cells import cell_len

    kept = [c for c in cols if c not in dropped]
    widths = [max(cell_len(v) for v in [c, *cols[c]]) for c in kept]
    if name_width is not None:
        widths = [min(w, name_width) if c in _NAMES else w for c, w in zip(kept, widths, strict=True)]
    return sum(widths) + 3 * len(kept) + 1  # one space either side of a cell, one border between and around


def _table(cols: dict[str, list[str]], dropped: list[str]) -> Table:
    """The comparison table without the ``dropped`` columns."""
    from rich.table import Table
    from rich.text import Text  # run folder names are text, not markup

    t = Table(show_header=True, header_style="bold")
    kept = [c for c in cols if c not in dropped]
    for col in kept:
        if col in _NAMES:  # a long name folds rather than ending in "…"
            t.add_column(col, overflow="fold", min_width=min(8, max(map(len, cols[col]))))
        else:  # numbers and the source: never wrapped or cut
            t.add_column(col, justify="left" if col == "from" else "right", no_wrap=True)
    for i in range(len(cols["run"])):
        t.add_row(*(Text(cols[c][i]) for c in kept))
    return t
