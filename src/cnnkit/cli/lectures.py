"""``cnnkit class-map | robustness-demo``: the lectures' sliding classifier and LeNet-5's 1998 demo.

The work is done by :mod:`cnnkit.explain.class_map` and :mod:`cnnkit.explain.robustness_demo`.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._args import add_command, add_device, add_run, int_in


def register(sub: Any) -> None:
    """Add ``class-map`` and ``robustness-demo`` to ``cnnkit``'s sub-parsers."""
    from .explain import _out

    p = add_command(sub, "class-map", run_class_map,
                    "slide a trained classifier over a larger image: a map of class scores",
                    "Rewrite the run's fully connected layers as convolutions (exact at the training "
                       "size) and run the network once over IMAGE at its own size: one class prediction per "
                       "training-size window. Draws the arg-max class over the image and one score map per class, "
                       "and prints the output stride and receptive field (from cnnkit summary).")  # fmt: skip
    add_run(p)
    p.add_argument("image", metavar="IMAGE", help="an image at least as large as the training size")
    p.add_argument("--stride", type=int_in(1, 1024), default=None,
                   help="pixels between map cells: the network's output stride (default) or a divisor of it "
                   "(shift and stitch: the network runs once per shift)")  # fmt: skip
    add_device(p)
    _out(p, "class_map.png")

    p = add_command(sub, "robustness-demo", run_robustness_demo,
                    "LeNet-5's 1998 demo on a digit model: shift, noise, scale, rotation, strings of touching digits",
                    "Accuracy of the run's model on its test images under shifts, noise, scaling and "
                       "rotation, and strings of test digits (apart, touching, overlapping) read by sliding the "
                       "convolutionalised network along them; one picture grid.")  # fmt: skip
    add_run(p)
    p.add_argument(
        "--strings", type=int_in(1, 10_000), default=100, help="digit strings per spacing (default 100)"
    )
    p.add_argument("--length", type=int_in(2, 12), default=3, help="digits per string (default 3)")
    add_device(p)
    _out(p, "robustness_demo.png")


def run_class_map(args: argparse.Namespace) -> int:
    from ..explain.class_map import class_map_file
    from .explain import _output

    _output(args, args.image, args.run_dir)
    r = class_map_file(args.run_dir, args.image, args.output, stride=args.stride, device=args.device)
    m = r.map
    ny, nx = m.argmax.shape
    print(
        f"image {r.image_size[0]}x{r.image_size[1]} -> class map {ny}x{nx}: one cell per "
        f"{m.receptive_field[0]}x{m.receptive_field[1]} px window (the receptive field of the output)"
    )
    step = f"{m.stride[0]} px" + (f" (network stride {m.network_stride[0]} px, shift and stitch)"
                                  if m.stride != m.network_stride else " (the product of the layers' strides)")  # fmt: skip
    print(f"cells {step} apart; first window centred at row {m.rows[0]:g}, column {m.cols[0]:g}")
    if ny == 1:  # a strip: the characters, as LeNet-5's demo read them
        if r.read:
            print("read left to right: " + " ".join(f"{c} ({p:.0%} at x={x:g})" for c, x, p in r.read))
        else:
            print("no window reaches 50% confidence")
    elif nx <= 64 and ny <= 64:  # the arg-max map as text ('.': below 50% confidence)
        names = [n if len(n) == 1 else str(i % 10) for i, n in enumerate(r.classes)]
        print("arg-max class per window ('.': below 50%):")
        for i in range(ny):
            print(
                "  "
                + "".join(names[int(m.argmax[i, j])] if m.confidence[i, j] >= 0.5 else "." for j in range(nx))
            )
    print(f"written to {r.path}")
    return 0


def run_robustness_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..explain.robustness_demo import LEVELS, robustness_demo
    from .explain import _output

    _output(args, args.run_dir)
    r = robustness_demo(
        args.run_dir, args.output, n_strings=args.strings, length=args.length, device=args.device
    )
    t = Table(title=f"Accuracy on {r.n_images} distorted test images", header_style="bold")
    t.add_column("distortion")
    t.add_column("levels -> accuracy")
    for kind, levels in LEVELS.items():
        t.add_row(kind, "  ".join(f"{lv:g}: {a:.1%}" for lv, a in zip(levels, r.accuracy[kind], strict=True)))
    console = Console()
    console.print(t)
    t = Table(
        title=f"{r.n_strings} strings of {args.length} test digits read by the class map", header_style="bold"
    )
    for col in ("spacing", "strings read exactly", "digits right"):
        t.add_column(col, justify="right" if col != "spacing" else "left")
    for name, rate in r.strings.items():
        t.add_row(name, f"{rate:.1%}", f"{r.digits_read[name]:.1%}")
    console.print(t)
    print(f"written to {r.path}")
    return 0
