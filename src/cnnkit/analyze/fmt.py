"""Number formatting shared by the summary and comparison tables."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def human(n: float, unit: str = "", digits: int = 3) -> str:
    """``3.21M``, ``15.5G``, ``800K``: SI prefixes (powers of 1000), as the lecture writes them."""
    n = float(n)
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}g}{prefix}{unit}"
    return f"{n:.{digits}g}{unit}" if not n.is_integer() else f"{int(n)}{unit}"


def human_bytes(n: float) -> str:
    """``60.9 MB``: decimal units (1 MB = 10^6 bytes), like the element counts."""
    for prefix, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {prefix}"
    return f"{int(n)} B"


def commas(n: int) -> str:
    return f"{int(n):,}"


def to_csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def to_markdown(
    header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[bool] | None = None
) -> str:
    """A GitHub pipe table; ``right`` marks right-aligned (numeric) columns."""

    def cell(v: object) -> str:
        return str(v).replace("|", "\\|")

    right = right or [False] * len(header)
    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
