"""argparse value types with bounds, so every numeric option of every command is checked at parse time.

``type=int_in(1, 10_000)`` makes ``--steps 0`` a one-line usage error ("must be >= 1") instead of
an exception deep inside the command.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An ``int`` argparse type accepting ``lo <= value <= hi``."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        _bounds(v, lo, hi)
        return v

    parse.__name__ = "int"
    return parse


def float_in(lo: float | None = None, hi: float | None = None, lo_open: bool = False) -> Callable[[str], float]:
    """A finite ``float`` argparse type accepting ``lo <= value <= hi`` (``lo < value`` with ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if lo_open and lo is not None and v <= lo:
            raise argparse.ArgumentTypeError(f"must be > {lo:g}, got {v:g}")
        _bounds(v, None if lo_open else lo, hi)
        return v

    parse.__name__ = "float"
    return parse


def _bounds(v: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and v < lo:
        raise argparse.ArgumentTypeError(f"must be >= {lo:g}, got {v:g}")
    if hi is not None and v > hi:
        raise argparse.ArgumentTypeError(f"must be <= {hi:g}, got {v:g}")


def add_device(p: argparse.ArgumentParser, what: str = "the network runs") -> None:
    """The one ``--device`` option of every command that runs a network: same choices, default ``auto``."""
    from ..config import DEVICES

    p.add_argument("--device", default="auto", choices=DEVICES,
                   help=f"where {what}: auto (CUDA, then Apple MPS, else the CPU), cpu, cuda or mps (default auto)")  # fmt: skip
