"""What every command declares alike: bounded value types and the shared option groups.

``type=int_in(1, 10_000)`` makes ``--steps 0`` a one-line usage error ("must be >= 1") instead of
an exception deep inside the command. The groups (``--device``, ``RUN_DIR``, ``-o/--output``,
``--quiet``, ``--seed``, ``--json``) are declared once here, so every command spells them the same
way with the same default (``--device auto`` everywhere).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


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


# ---- option groups: every command declares these the same way, with one default each
def add_command(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str,
                description: str | None = None, **kw: Any) -> argparse.ArgumentParser:  # fmt: skip
    """A subcommand run by ``func``: ``help`` in ``cnnkit --help``, ``description`` (else ``help``) in its own.

    ``kw`` go to ``add_parser`` (``epilog``, ``formatter_class``).
    """
    p = sub.add_parser(name, help=help, description=description or help, **kw)
    p.set_defaults(func=func)
    return p


def add_run(p: argparse.ArgumentParser, help: str = "a run folder (the one `cnnkit train` printed)") -> None:
    """The positional ``RUN_DIR`` of every command that reads a trained run."""
    p.add_argument("run_dir", metavar="RUN_DIR", help=help)


def add_output(p: argparse.ArgumentParser, default: str | None, what: str = "PNG", metavar: str = "FILE",
               default_text: str | None = None) -> None:  # fmt: skip
    """``-o/--output``: the one file a command writes (checked before any work, never over an input).

    ``default_text`` describes a default the command derives itself (``default`` is then ``None``).
    """
    from ..io import unused_name

    note = default_text or (f"default {default}; -2, -3, ... added when that file exists" if default else "")
    # The default never replaces a file (the user's, or this command's last result): a free name is
    # chosen when the parser is built, in the folder the command runs in.
    p.add_argument("-o", "--output", default=str(unused_name(default)) if default else None, metavar=metavar,
                   help=f"{what} to write" + (f" ({note})" if note else ""))  # fmt: skip


def add_quiet(p: argparse.ArgumentParser, what: str = "print only the final result") -> None:
    p.add_argument("--quiet", action="store_true", help=what)


def add_json(p: argparse.ArgumentParser, what: str = "print the result as JSON") -> None:
    p.add_argument("--json", action="store_true", help=what)


def add_seed(p: argparse.ArgumentParser, what: str = "random seed", hi: int = 2**32 - 1) -> None:
    # torch.manual_seed's range by default; a negative seed is a typo, not a choice
    p.add_argument("--seed", type=int_in(0, hi), default=0, help=f"{what} (default 0)")


def add_run_folder_flags(p: argparse.ArgumentParser, what: str = "run") -> None:
    """``--resume``, ``--overwrite`` and ``--quiet`` of the commands that make a run folder (train, finetune)."""
    p.add_argument("--resume", metavar="RUN_DIR", help=f"continue an interrupted {what} from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    add_quiet(p)


def add_data_split(p: argparse.ArgumentParser) -> None:
    """How DATA is split and read, with `cnnkit train`'s defaults, for commands that read a dataset without training."""
    p.add_argument("--val-split", type=float_in(0.0, 0.9), default=0.15,
                   help="validation fraction, as cnnkit train (default 0.15)")  # fmt: skip
    p.add_argument("--test-split", type=float_in(0.0, 0.9), default=0.15,
                   help="test fraction, as cnnkit train (default 0.15)")  # fmt: skip
    add_seed(p, "seed of the split, as cnnkit train")
    p.add_argument("--data-root", default=None, help="where standard datasets live")
    p.add_argument("--download", action="store_true", help="download a standard dataset if its files are missing")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
