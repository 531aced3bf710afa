"""``cnnkit show-batch DATASET -o batch.png``: a labelled grid of augmented training images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import add_output, int_in

# What matplotlib can write; checked before loading any data (matplotlib would fail only at the end).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".webp", ".tif", ".tiff")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show-batch",
        help="save a grid of augmented training images with their class names",
        description="Save a labelled grid of training images as the training loader yields them "
        "(resized, augmented), to check the data and the augmentation before training.",
    )
    p.add_argument("dataset", nargs="?", default="digits", help="dataset name, folder:PATH or csv:FILE (default: digits)")
    add_output(p, "batch.png", "image file")
    p.add_argument("--augment", default="auto",
                   help="augmentation spec, e.g. 'translate=2,rotate=10,flip'; auto: chosen from the training "
                   "images, as cnnkit train does; none")  # fmt: skip
    p.add_argument("--n", type=int_in(1, 1024), default=32, help="number of images, 1-1024 (default: 32)")
    p.add_argument("--input-size", type=int_in(1, 2048), default=None,
                   help="image side in pixels (default: the size cnnkit train uses for --model, e.g. 32 for digits)")  # fmt: skip
    p.add_argument("--model", default=None,
                   help="model whose training input size to draw at (default: cnnkit train's default model)")  # fmt: skip
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="which split (default: train)")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="random seed (split, shuffle, augmentation)")
    p.add_argument("--data-root", default=None, help="where standard datasets live")
    p.add_argument("--download", action="store_true", help="download a standard dataset if its files are missing")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import Augment
    from ..data.auto_augment import choose_augment
    from ..data.preview import augmented_batch, save_batch_grid
    from ..engine.train import data_config, load_data_for
    from ..errors import ConfigError
    from ..io import check_output_file

    # The output first: a bad path must fail before the data is loaded, and never overwrite an input.
    inputs = (args.dataset.split(":", 1)[1],) if args.dataset.startswith(("csv:", "folder:")) else ()
    check_output_file(args.output, "-o/--output", inputs=inputs)
    if Path(args.output).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"-o/--output {args.output!r} is not an image file name",
                          hint="end it in " + ", ".join(IMAGE_SUFFIXES))  # fmt: skip
    aug = Augment.from_spec(args.augment) if args.augment != "auto" else None  # a bad spec fails before loading
    # The size and split cnnkit train would use (digits: 32 px, not the files' 8 px): augmentation drawn on
    # smaller images than training sees would look stronger than it is.
    cfg = data_config(args.dataset, model=args.model, input_size=args.input_size, seed=args.seed,
                      data_root=args.data_root, download=args.download, strict=args.strict)  # fmt: skip
    data = load_data_for(cfg)
    for line in data.info.get("messages", []):
        print(line)
    for line in data.info.get("warnings", []):
        print(f"warning: {line}")
    if aug is None:  # the same choice as cnnkit train's, from the training images at this size
        choice = choose_augment(data, seed=args.seed)
        print(f"augment auto chose {choice.spec}: {choice.reason}")
        aug = Augment.from_spec(choice.spec)
    x, y = augmented_batch(data, aug, n=args.n, seed=args.seed, split=args.split)
    c, h, w = data.image_shape
    title = f"{args.dataset} {args.split}, {w}x{h}, augment: {aug.to_spec()}"
    path = save_batch_grid(x, y, data.classes, args.output, title=title)
    print(f"wrote {path} ({len(y)} {args.split} images, augment: {aug.to_spec()})")
    return 0
