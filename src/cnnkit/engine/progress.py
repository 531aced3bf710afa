"""Progress output: a live batch bar with ETA and one table row per epoch (rank 0 only)."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

COLUMNS = [
    ("epoch", "epoch", 7, "{}"),
    ("train_loss", "train loss", 10, "{:.4f}"),
    ("train_acc", "train acc", 9, "{:.2%}"),
    ("val_loss", "val loss", 9, "{:.4f}"),
    ("val_acc", "val acc", 8, "{:.2%}"),
    ("lr", "lr", 9, "{:.2e}"),
    ("time_s", "sec", 6, "{:.1f}"),
]


class Reporter:
    """Prints to the terminal and mirrors every line into the run's ``log.txt``."""

    def __init__(self, enabled: bool = True, log=None, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.log = log  # callable(str) or None
        self._progress: Progress | None = None
        self._task = None
        self._epochs = 0
        self._t_epoch = 0.0

    def print(self, text: str = "", style: str | None = None) -> None:
        if self.log is not None:
            self.log(text)
        if self.enabled:
            self.console.print(text, style=style, markup=False, highlight=False)

    # ---- epoch table
    def header(self, total_epochs: int) -> None:
        self._epochs = total_epochs
        self.print("  ".join(f"{title:>{w}}" for _, title, w, _ in COLUMNS))

    def row(self, row: dict[str, Any], best: bool = False) -> None:
        cells = []
        for key, _, w, fmt in COLUMNS:
            v = row.get(key)
            s = f"{v}/{self._epochs}" if key == "epoch" else ("-" if v is None or v == "" else fmt.format(v))
            cells.append(f"{s:>{w}}")
        self.print("  ".join(cells) + ("  *" if best else ""))

    # ---- live bar
    def start_epoch(self, epoch: int, batches: int) -> None:
        self._t_epoch = time.perf_counter()
        if not self.enabled or not self.console.is_terminal:
            return  # a live bar in a log file or CI output is noise; the epoch rows say enough
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{self._epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )  # fmt: skip
        self._progress.start()
        self._task = self._progress.add_task("train", total=batches, loss=float("nan"))

    def advance(self, loss: float | None = None) -> None:
        if self._progress is not None:
            kw = {"loss": loss} if loss is not None else {}
            self._progress.update(self._task, advance=1, **kw)

    def end_epoch(self) -> float:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return time.perf_counter() - self._t_epoch
