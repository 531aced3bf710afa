"""``cnnkit show-batch DATASET -o batch.png``: a labelled grid of augmented training images."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._args import int_in

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
    p.add_argument("-o", "--output", default="batch.png", help="image file to write (default: batch.png)")
    p.add_argument("--augment", default="auto",
                   help="augmentation spec, e.g. 'translate=2,rotate=10,flip'; auto: the dataset's default; none")  # fmt: skip
    p.add_argument("--n", type=int_in(1, 1024), default=32, help="number of images, 1-1024 (default: 32)")
    p.add_argument("--input-size", type=int_in(1, 2048), default=None,
                   help="image side in pixels (default: the data's own)")  # fmt: skip
    p.add_argument("--split", default="train", choices=("train", "val", "test"), help="which split (default: train)")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="random seed (split, shuffle, augmentation)")
    p.add_argument("--data-root", default=None, help="where standard datasets live")
    p.add_argument("--download", action="store_true", help="download a standard dataset if its files are missing")
    p.add_argument("--strict", action="store_true", help="stop at the first bad file instead of skipping it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data import Augment, dataset_entry, load_dataset
    from ..data.preview import augmented_batch, save_batch_grid
    from ..errors import ConfigError
    from ..io import check_output_file

    # The output first: a bad path must fail before the data is loaded, and never overwrite an input.
    inputs = (args.dataset.split(":", 1)[1],) if args.dataset.startswith(("csv:", "folder:")) else ()
    check_output_file(args.output, "-o/--output", inputs=inputs)
    if Path(args.output).suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"-o/--output {args.output!r} is not an image file name",
                          hint="end it in " + ", ".join(IMAGE_SUFFIXES))  # fmt: skip
    spec = args.augment
    if spec == "auto":
        entry = dataset_entry(args.dataset)
        spec = entry.default_augment if entry else "translate=2,flip"
    aug = Augment.from_spec(spec)
    data = load_dataset(args.dataset, input_size=args.input_size, seed=args.seed, root=args.data_root,
                        download=args.download, strict=args.strict)  # fmt: skip
    for line in data.info.get("messages", []):
        print(line)
    for line in data.info.get("warnings", []):
        print(f"warning: {line}")
    x, y = augmented_batch(data, aug, n=args.n, seed=args.seed, split=args.split)
    c, h, w = data.image_shape
    title = f"{args.dataset} {args.split}, {w}x{h}, augment: {aug.to_spec()}"
    path = save_batch_grid(x, y, data.classes, args.output, title=title)
    print(f"wrote {path} ({len(y)} {args.split} images, augment: {aug.to_spec()})")
    return 0
