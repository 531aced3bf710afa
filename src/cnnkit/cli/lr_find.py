"""``cnnkit lr-find``: the learning-rate range test through the real training step, a plot and a suggestion."""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields
from pathlib import Path

from ._args import add_command, add_json, add_output, add_quiet, float_in, int_in

HELP = "learning-rate range test: sweep the rate up over training steps, plot the loss, suggest a rate"
DESCRIPTION = (
    "The learning-rate range test (Leslie Smith; fastai's lr_find) on the run `cnnkit train` would make with "
    "the same flags: same data, augmentation, model, optimiser, batch size, AMP and device. The rate grows "
    "exponentially from --start-lr to --end-lr over --steps training batches; the sweep stops once the smoothed "
    "loss passes 4x its minimum or diverges. Suggests fastai's `valley` (2/3 down the longest descent of the "
    "smoothed loss), also lists the steepest point and minimum/10, and writes a plot of loss against rate. "
    "`cnnkit train --lr find` runs the same test first and trains with the suggestion."
)

# Options of `cnnkit train` that play no part in a few hundred steps at a swept rate.
SKIP = ("lr", "epochs", "scheduler", "warmup_epochs", "step_size", "gamma", "plateau_patience", "early_stopping",
        "monitor", "tta", "name", "runs_dir", "logger", "sync_bn", "time_budget")  # fmt: skip
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".webp")


def register(sub: argparse._SubParsersAction) -> None:
    from ..config import TrainConfig
    from .train import add_config_flags

    p = add_command(sub, "lr-find", run, HELP, DESCRIPTION)
    # Records cnnkit writes (augment_reason, ...) are not options; unlisted, `--epochs` would abbreviate one.
    records = tuple(f.name for f in fields(TrainConfig) if f.metadata.get("help") == argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE", help="YAML file of training options, as cnnkit train --config")
    p.add_argument("--start-lr", type=float_in(0.0, 10.0, lo_open=True), default=1e-7,
                   help="first learning rate of the sweep (default 1e-07)")  # fmt: skip
    p.add_argument("--end-lr", type=float_in(0.0, 1000.0, lo_open=True), default=10.0,
                   help="last learning rate of the sweep (default 10)")  # fmt: skip
    p.add_argument("--steps", type=int_in(5, 100_000), default=100,
                   help="training batches in the sweep, 5-100000 (default 100; the loader cycles)")  # fmt: skip
    add_output(p, "lr_find.png", "plot (PNG)")
    add_json(p, "print the result (rates, losses, suggestion, candidates) as JSON")
    add_quiet(p, "print only the suggested learning rate")
    add_config_flags(p, skip=SKIP + records)


def _rows(lrs: list[float], losses: list[float], smoothed: list[float]) -> list[int]:
    """The step nearest each power of ten, and the last: a short table of the curve."""
    picks = []
    for e in range(math.floor(math.log10(lrs[0])), math.ceil(math.log10(lrs[-1])) + 1):
        i = min(range(len(lrs)), key=lambda k: abs(math.log10(lrs[k]) - e))
        if abs(math.log10(lrs[i]) - e) < 0.5 and i not in picks:
            picks.append(i)
    if len(lrs) - 1 not in picks:
        picks.append(len(lrs) - 1)
    return picks


def run(args: argparse.Namespace) -> int:
    import json

    from ..engine.lr_find import check_range, lr_find
    from ..errors import ConfigError
    from ..io import check_output_file
    from .train import given_overrides

    check_range(args.start_lr, args.end_lr, args.steps)  # --start-lr >= --end-lr: one line, before any work
    over = given_overrides(args)
    data = str(over.get("data", ""))
    inputs = (data.split(":", 1)[1],) if data.startswith(("csv:", "folder:")) else ()
    check_output_file(args.output, "-o/--output", inputs=inputs)
    if Path(args.output).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"-o/--output {args.output!r} is not an image file name",
                          hint="end it in " + ", ".join(IMAGE_SUFFIXES))  # fmt: skip
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json or args.quiet else print
    say(f"lr-find: sweeping the learning rate from {args.start_lr:g} to {args.end_lr:g} over {args.steps} "
        "training steps")  # fmt: skip
    r = lr_find(args.config, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                quiet=args.json or args.quiet, **over)  # fmt: skip
    s = r.setup
    title = f"lr-find: {s['model']} on {s['data']}, {s['optimizer']}, batch {s['batch_size']}"
    path = r.plot(args.output, title=f"{title}: suggested lr {r.suggestion:.3g} ({r.method})")
    if args.json:
        print(json.dumps({**r.to_dict(), "plot": str(path)}, indent=2))
        return 0
    if args.quiet:
        print(f"{r.suggestion:g}")
        return 0
    print(f"{title}, weight decay {s['weight_decay']:g}, augment {s['augment'] or 'none'}, amp {s['amp']}, "
          f"on {s['device']}")  # fmt: skip
    print(f"{'lr':>10}  {'loss':>8}  {'smoothed':>8}")
    for i in _rows(r.lrs, r.losses, r.smoothed):
        print(f"{r.lrs[i]:>10.3g}  {r.losses[i]:>8.4f}  {r.smoothed[i]:>8.4f}")
    print(f"stopped after {len(r.lrs)} of {r.steps} steps: {r.stop_reason}")
    others = ", ".join(f"{k} {v:.3g}" for k, v in r.candidates.items() if k != r.method)
    print(f"suggested lr {r.suggestion:.3g} ({r.method}: 2/3 down the longest descent of the smoothed loss); "
          f"other candidates: {others}")  # fmt: skip
    print(f"wrote {path}")
    print(
        f"train with it: cnnkit train --lr {r.suggestion:g} (same flags), or let the run find it: --lr find"
    )
    return 0
