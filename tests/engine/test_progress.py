"""The live progress bar: running loss, images/s and ETA, never ``loss nan`` for finite losses.

Issue 17: the bar showed ``loss nan`` on every batch because the loop advanced it without the loss.
These tests draw the bar on a terminal console (``force_terminal``) writing into a string, feed it
real losses (from a hand-made sequence, then from the real training loop on digits) and read
what was drawn.
"""

from __future__ import annotations

import io
import re

import pytest
import torch
from rich.console import Console

from cnnkit.config import TrainConfig
from cnnkit.data import load_dataset
from cnnkit.engine.device import select_device
from cnnkit.engine.loop import Trainer
from cnnkit.engine.progress import Reporter
from cnnkit.models import create_model
from cnnkit.run import WeightsMeta

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=140, color_system=None), buf


def frames(buf: io.StringIO) -> list[str]:
    """Every redraw of the bar, control codes removed."""
    text = ANSI.sub("", buf.getvalue())
    return [f.strip() for f in re.split(r"[\r\n]", text) if re.match(r"epoch \d+/\d+ ", f.strip())]


def shown_losses(lines: list[str]) -> list[float]:
    return [float(m) for f in lines for m in re.findall(r"loss (\S+)", f) if m != "-"]


def test_finite_losses_are_shown_as_the_running_mean(monkeypatch):
    console, buf = terminal()
    r = Reporter(console=console)
    r.header(2)
    clock = iter(range(100))
    # A fake clock: 1 s per reading, so every batch is redrawn and the rate is exactly computable.
    monkeypatch.setattr("cnnkit.engine.progress._clock", lambda: float(next(clock)))
    losses, batch = [2.30, 1.70, 1.10, 0.40], 32
    r.start_epoch(1, len(losses))
    total, seen = torch.zeros(()), 0
    for v in losses:
        total += torch.tensor(v) * batch  # in place, as the loop accumulates it
        seen += batch
        r.running(total, seen)
        r.advance()
    r.end_epoch()
    lines = frames(buf)
    assert lines and not any("nan" in f.lower() for f in lines)
    # before the first batch: a dash, not a number
    assert lines[0].split()[:3] == ["epoch", "1/2", "0/4"] and "loss -" in lines[0]
    shown = shown_losses(lines)
    means = [sum(losses[: i + 1]) / (i + 1) for i in range(len(losses))]
    assert sorted(set(shown), reverse=True) == pytest.approx(means, abs=5e-5)  # every running mean, in order
    assert "4/4" in lines[-1] and f"loss {means[-1]:.4f}" in lines[-1]
    # images/s over the epoch so far: the clock reads 0 at the start and 1..4 at the four batches
    rates = [int(m.replace(",", "")) for f in lines for m in re.findall(r"([\d,]+) img/s", f)]
    assert sorted(set(rates)) == [32] and rates[-1] == 32
    assert "eta" in lines[-1]


def test_a_batch_loss_without_running_totals_is_shown():
    console, buf = terminal()
    r = Reporter(console=console)
    r.header(1)
    r.start_epoch(1, 2)
    r.advance(0.75)
    r.advance(0.5)
    r.end_epoch()
    lines = frames(buf)
    assert "loss 0.5000" in lines[-1] and not any("nan" in f for f in lines)


def test_no_bar_off_a_terminal_or_when_quiet():
    buf = io.StringIO()
    r = Reporter(console=Console(file=buf, width=100))  # a file, not a terminal: rows only
    r.header(1)
    r.start_epoch(1, 3)
    r.running(torch.tensor(3.0), 3)
    r.advance()
    r.end_epoch()
    assert "img/s" not in buf.getvalue()
    console, buf2 = terminal()
    q = Reporter(enabled=False, console=console)
    q.start_epoch(1, 3)
    q.advance(1.0)
    q.end_epoch()
    assert buf2.getvalue() == ""


def test_the_training_loop_feeds_the_bar_its_real_losses():
    """One epoch of the real loop on digits: the bar's last loss is the epoch row's training loss."""
    data = load_dataset("digits", input_size=16)
    cfg = TrainConfig.from_dict({"epochs": 1, "augment": "none", "optimizer": "sgd", "lr": 0.05,
                                 "warmup_epochs": 0.0, "device": "cpu", "batch_size": 128})  # fmt: skip
    c, h, w = data.image_shape
    torch.manual_seed(cfg.seed)
    net = create_model("linear", num_classes=data.num_classes, in_chans=c, input_size=(h, w))
    meta = WeightsMeta(model="linear", model_args={}, num_classes=data.num_classes, classes=data.classes,
                       input_size=[c, h, w], mean=list(data.mean), std=list(data.std))  # fmt: skip
    console, buf = terminal()
    trainer = Trainer(net, cfg, data, meta, None, select_device("cpu"), Reporter(console=console))
    trainer.fit()
    lines = frames(buf)
    bars = [f for f in lines if "img/s" in f]
    assert bars, lines
    assert not any("nan" in f.lower() for f in lines)
    last = bars[-1]
    n = len(trainer.train_loader)
    assert f"{n}/{n}" in last
    row_loss = trainer.state.history[0]["train_loss"]
    assert shown_losses([last])[-1] == pytest.approx(row_loss, abs=1e-4)
    assert int(re.search(r"([\d,]+) img/s", last).group(1).replace(",", "")) > 0


def test_long_header_lines_wrap_under_their_column_in_a_terminal_and_stay_whole_in_the_log():
    logged: list[str] = []
    out = io.StringIO()
    r = Reporter(log=logged.append, console=Console(file=out, force_terminal=True, width=100, soft_wrap=True))
    long = "                (no flips: " + "a probe tells the images from their mirror images, " * 4 + "so no flips)"
    r.print(long)
    shown = out.getvalue().splitlines()
    assert len(shown) > 1 and all(len(ln) <= 100 for ln in shown)
    assert all(ln.startswith(" " * 16) and not ln.startswith(" " * 17) for ln in shown)  # under the value column
    assert logged == [long]  # log.txt keeps the line whole
