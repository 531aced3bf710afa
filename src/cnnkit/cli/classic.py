"""``cnnkit filter``, ``cnnkit filter-bank`` and ``cnnkit baseline``: classic vision from the shell."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._args import add_command, add_output, add_seed, float_in, int_in


def register(subparsers: Any) -> None:
    """Add the classic-vision subcommands to ``cnnkit``'s sub-parsers."""
    from ..classic.filters import BOUNDARY_TO_NUMPY, KERNELS, MODES

    p = add_command(subparsers, "filter", run_filter,
                    "filter an image with a hand-made kernel (lecture boundary conditions)",
                    "Cross-correlate (or convolve) an image with a named kernel and write a viewable PNG "
                    "(the response min-max normalised to 0..255).")  # fmt: skip
    p.add_argument("image", help="input image (any format PIL reads)")
    p.add_argument("--kernel", default="sobel_x", help=f"kernel name: {', '.join(KERNELS)} (default sobel_x)")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="kernel parameter, repeatable, e.g. -p sigma=2 -p size=9",
    )
    p.add_argument(
        "--boundary",
        default="zero",
        help=f"boundary condition: {', '.join(BOUNDARY_TO_NUMPY)} (default zero)",
    )
    p.add_argument("--mode", default="same", help=f"output size: {', '.join(MODES)} (default same)")
    p.add_argument("--stride", type=int_in(1, 1024), default=1, help="keep one output pixel every S (default 1)")
    p.add_argument("--dilation", type=int_in(1, 1024), default=1, help="spacing of the kernel taps (default 1)")
    p.add_argument(
        "--convolve", action="store_true", help="convolve (flip the kernel) instead of cross-correlate"
    )
    p.add_argument("--color", action="store_true", help="filter each RGB channel (default: grayscale)")
    add_output(p, None, default_text="default: <image>_<kernel>.png in the current folder")

    p = add_command(subparsers, "filter-bank", run_filter_bank,
                    "plot the response of every lecture filter in one labelled grid",
                    "Apply every filter of the lecture (identity, boxcar, Gaussian, Laplacian, Prewitt, Sobel, "
                    "sharpen, Gabor, oriented Gaussian) and the pooled edge magnitudes to a grayscale image.")  # fmt: skip
    p.add_argument("image", help="input image (any format PIL reads)")
    add_output(p, "filter_bank.png")
    p.add_argument("--boundary", default="mirror", help="boundary condition (default mirror)")
    p.add_argument(
        "--max-size",
        type=int_in(8, 4096),
        default=256,
        help="shrink the image so its longer side is at most this, 8-4096 (default 256)",
    )

    p = add_command(subparsers, "baseline", run_baseline_cmd,
                    "classical baseline: hand-crafted features + scikit-learn classifier",
                    "Extract features (HOG, LBP, raw pixels, colour histogram, two most frequent colours), train "
                    "a classifier on the train+val split and print its test accuracy (stratified split, same test "
                    "images as a CNN trained with the same seed).")  # fmt: skip
    p.add_argument("--data", default="digits", help="digits or folder:PATH (one sub-folder per class)")
    p.add_argument(
        "--features", default="hog", help="hog, lbp, pixels, colorhist or two-colors (default hog)"
    )
    p.add_argument("--classifier", default="svm", help="svm, linear-svm, logreg or knn (default svm)")
    # The test split is drawn with seed + 1, and scikit-learn takes seeds below 2**32.
    add_seed(p, "split seed", hi=2**32 - 2)
    p.add_argument(
        "--test-split", type=float_in(0, 1, lo_open=True), default=0.15, help="test fraction (default 0.15)"
    )
    p.add_argument(
        "--image-size",
        type=int_in(4, 1024),
        default=64,
        help="folder images are resized to this square size, 4-1024 (default 64)",
    )


def _params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"bad kernel parameter {item!r}", hint="write it as KEY=VALUE, e.g. -p sigma=2")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                raise ConfigError(f"kernel parameter {key} must be a number, got {value!r}") from None
        if not math.isfinite(out[key]):  # inf/nan make NaN kernels or infinite sizes
            raise ConfigError(f"kernel parameter {key} must be a finite number, got {value!r}")
    return out


def run_filter(args: argparse.Namespace) -> int:
    from ..classic.bank import save_image
    from ..classic.datasets import read_image
    from ..classic.filters import convolve, correlate, get_kernel
    from ..io import check_output_file, unused_name

    kernel = get_kernel(args.kernel, **_params(args.param))  # validate before reading the image
    path = args.output or str(unused_name(f"{Path(args.image).stem}_{args.kernel}.png"))
    check_output_file(path, inputs=(args.image,))
    image = read_image(args.image, color=args.color)
    op = convolve if args.convolve else correlate
    out = op(
        image, kernel, boundary=args.boundary, mode=args.mode, stride=args.stride, dilation=args.dilation
    )
    shape = save_image(path, out)
    print(f"wrote {path} ({' x '.join(map(str, shape))}, {args.kernel}, {args.boundary}/{args.mode})")
    return 0


def run_filter_bank(args: argparse.Namespace) -> int:
    from ..classic.bank import save_filter_bank
    from ..classic.datasets import read_image
    from ..classic.filters import BOUNDARY_TO_NUMPY
    from ..errors import suggest
    from ..io import check_output_file

    if args.boundary not in BOUNDARY_TO_NUMPY:  # before the image is read and shrunk
        raise ConfigError(f"unknown boundary {args.boundary!r}", hint=suggest(args.boundary, BOUNDARY_TO_NUMPY))
    check_output_file(args.output, inputs=(args.image,))
    image = read_image(args.image)
    if args.max_size and max(image.shape) > args.max_size:
        from skimage.transform import resize

        f = args.max_size / max(image.shape)
        image = resize(
            image, (max(1, round(image.shape[0] * f)), max(1, round(image.shape[1] * f))), anti_aliasing=True
        )
    w, h = save_filter_bank(image, args.output, boundary=args.boundary)
    print(f"wrote {args.output} ({w} x {h} pixels)")
    return 0


def run_baseline_cmd(args: argparse.Namespace) -> int:
    from ..classic.descriptors import run_baseline

    result = run_baseline(
        args.data,
        args.features,
        args.classifier,
        seed=args.seed,
        test_split=args.test_split,
        image_size=args.image_size,
    )
    print(result)
    return 0
