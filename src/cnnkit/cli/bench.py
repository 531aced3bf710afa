"""``cnnkit bench --model M``: training, inference and data-pipeline images/s; GFLOP/s against a matmul peak."""

from __future__ import annotations

import argparse

from ._args import add_command, add_device, add_json, int_in

MAX_CLASSES = 100_000  # as `cnnkit summary --num-classes`: more than any dataset has


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", run, "training and inference speed of a model, against the device's peak and "
                    "the data pipeline",
                    "Measure, in one run on one device: training images/s through the real training step, "
                    "inference images/s (eval mode, at the evaluation's batch), the GFLOP/s both achieve against "
                    "a matmul peak measured in the same run, and the data pipeline's images/s (the loader with "
                    "the augmentation `auto` picks), then say whether the model or the data is the bottleneck. "
                    "Each number is the median of --repeats timings after --warmup steps. Without --data the "
                    "images are synthetic.")  # fmt: skip
    p.add_argument(
        "--model", required=True, help="a model name (`cnnkit models`), or torchvision:NAME / timm:NAME"
    )
    p.add_argument("--batch-size", type=int_in(1, 65_536), default=64, help="training batch (default 64)")
    p.add_argument("--infer-batch", type=int_in(1, 65_536), metavar="N",
                   help="inference batch (default: the evaluation's, the larger of 256 and --batch-size)")  # fmt: skip
    p.add_argument("--input-size", type=int_in(1, 8192), metavar="SIDE",
                   help="image side in pixels (default: the model's; with --data: as cnnkit train)")  # fmt: skip
    p.add_argument("--channels", type=int_in(1, 1024),
                   help="channels of the synthetic images (default: the model's)")  # fmt: skip
    p.add_argument("--classes", type=int_in(1, MAX_CLASSES),
                   help="classes of the synthetic data (default 10 below 64 px, else 1000)")  # fmt: skip
    add_device(p, "the model and the data pipeline run")
    p.add_argument("--amp", nargs="?", const="on", default="auto", choices=("auto", "on", "off"),
                   help="mixed precision: --amp alone is on; auto (default) is on for CUDA, as cnnkit train")  # fmt: skip
    p.add_argument("--steps", type=int_in(1, 100_000), default=5,
                   help="steps per timing (default 5; more for fast workloads, so a timing lasts 0.1 s)")  # fmt: skip
    p.add_argument("--warmup", type=int_in(0, 10_000), default=2, help="untimed steps first (default 2)")
    p.add_argument("--repeats", type=int_in(1, 1000), default=3,
                   help="timings of each workload; the median is reported (default 3)")  # fmt: skip
    p.add_argument("--data", metavar="DATA", help="time the pipeline of this dataset, as cnnkit train --data "
                   "(default: synthetic images in memory)")  # fmt: skip
    p.add_argument("--data-root", default=None, help="where standard datasets live")
    p.add_argument(
        "--augment",
        default="auto",
        metavar="SPEC",
        help="augmentation of the data pipeline, as cnnkit train (default auto: chosen from the images)",
    )
    add_json(p, "print every number as JSON")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..engine.bench import bench

    err = Console(stderr=True)
    # A spinner naming the stage being timed; nothing when stderr is not a terminal.
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err,
                  transient=True, disable=not err.is_terminal) as prog:  # fmt: skip
        task = prog.add_task(f"bench {args.model}", total=None)
        r = bench(args.model, batch_size=args.batch_size, infer_batch=args.infer_batch,
                  input_size=args.input_size, channels=args.channels, classes=args.classes, device=args.device,
                  amp=args.amp, steps=args.steps, warmup=args.warmup, repeats=args.repeats, data=args.data,
                  augment=args.augment, data_root=args.data_root,
                  progress=lambda text: prog.update(task, description=f"bench {args.model}: {text}"))  # fmt: skip
    if args.json:
        print(r.to_json())
    else:
        import sys

        Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(r)
    return 0
