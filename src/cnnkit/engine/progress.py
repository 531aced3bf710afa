"""Progress output: a live batch bar with ETA and one table row per epoch (rank 0 only)."""

from __future__ import annotations

import sys
import textwrap
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

from ..io import silence_stdout, stdout_is_devnull

COLUMNS = [
    ("epoch", "epoch", 7, "{}"),
    ("train_loss", "train loss", 10, "{:.4f}"),
    ("train_acc", "train acc", 9, "{:.2%}"),
    ("val_loss", "val loss", 9, "{:.4f}"),
    ("val_acc", "val acc", 8, "{:.2%}"),
    ("lr", "lr", 9, "{:.2e}"),
    ("time_s", "sec", 6, "{:.1f}"),
]

_clock = time.perf_counter  # the bar's clock (a module attribute, so tests can drive it)


class Reporter:
    """Prints to the terminal and mirrors every line into the run's ``log.txt``."""

    def __init__(self, enabled: bool = True, log=None, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.log = log  # callable(str) or None
        self._progress: Progress | None = None
        self._task = None
        self._batches = self._done = 0
        self._epochs = 0
        self._t_epoch = 0.0
        self._running: tuple[Any, int, int] | None = None  # (loss sum, images on this rank, on all)
        self._shown_at = 0.0

    def print(self, text: str = "", style: str | None = None) -> None:
        if self.log is not None:
            self.log(text)
        if self.enabled:
            if self.console.is_terminal and len(text) > self.console.width and text.startswith("  "):
                # The header's long lines (an option's origin, the augmentation's reason) wrap under their
                # value column in a terminal instead of at column 0; log.txt keeps each as one line.
                text = textwrap.fill(text, self.console.width, subsequent_indent=" " * 16, break_on_hyphens=False)
            try:
                self.console.print(text, style=style, markup=False, highlight=False)
            except BrokenPipeError:
                self._output_closed()
            except SystemExit as e:  # rich's answer to a broken pipe: stdout to /dev/null, then exit(1)
                if e.code != 1 or not stdout_is_devnull():
                    raise
                self._output_closed()

    def _output_closed(self) -> None:
        """The reader of the terminal output went away (``cnnkit train | head``): the run goes on, and says
        so in its log, instead of dying half-way with nothing recorded."""
        silence_stdout()
        self.enabled = False
        if self.log is not None:
            self.log("(the terminal output was closed here; training goes on and the rest is only in this log)")

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
        self._t_epoch = _clock()
        self._running, self._shown_at, self._batches, self._done = None, 0.0, batches, 0
        if not self.enabled or not self.console.is_terminal:
            return  # a live bar in a log file or CI output is noise; the epoch rows say enough
        self._progress = Progress(
            TextColumn(f"epoch {epoch}/{self._epochs}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), console=self.console, transient=True,
        )  # fmt: skip
        self._progress.start()
        # No loss before the first batch: a dash, never a made-up number (this used to show "loss nan").
        self._task = self._progress.add_task("train", total=batches, stats="loss -")

    def running(self, loss_sum: Any, seen: int, world: int = 1) -> None:
        """The epoch so far, from the loop: summed loss (a tensor, read lazily), images seen on this rank.

        The tensor is only read when the bar is redrawn (a few times a second), so on a GPU the
        loop is not synchronised after every batch just to print a number.
        """
        self._running = (loss_sum, seen, seen * world)

    def stats(self, now: float | None = None) -> str:
        """``loss 0.1234  5,120 img/s``: the epoch's mean training loss so far and its throughput."""
        if self._running is None or self._running[1] == 0:
            return "loss -"
        loss_sum, seen, images = self._running
        loss = float(loss_sum) / seen
        rate = images / max((_clock() if now is None else now) - self._t_epoch, 1e-9)
        return f"loss {loss:.4f}  {rate:,.0f} img/s"

    def advance(self, loss: float | None = None) -> None:
        """One batch done; ``loss`` (that batch's) is shown only when the loop reports no running totals."""
        if self._progress is None:
            return
        now = _clock()
        self._done += 1
        kw: dict[str, str] = {}
        # Read the loss (a device sync on a GPU) at most 5 times a second, and after the last batch.
        if now - self._shown_at >= 0.2 or self._done >= self._batches:
            self._shown_at = now
            if self._running is None and loss is not None:
                kw["stats"] = f"loss {float(loss):.4f}"
            else:
                kw["stats"] = self.stats(now)
        self._progress.update(self._task, advance=1, **kw)
        if kw:
            self._progress.refresh()  # draw the new numbers now, not at the next tick of rich's timer

    def end_epoch(self) -> float:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        return _clock() - self._t_epoch
