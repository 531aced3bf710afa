"""Separable filtering speed-up: one n x n pass against two 1-D passes (n + n taps).

A rank-1 kernel ``kappa = col row^T`` (boxcar, Gaussian, Prewitt, Sobel) can be applied as a
vertical then a horizontal 1-D filter with the same result, ``O(2n)`` instead of ``O(n^2)``
operations per pixel. This script times :func:`cnnkit.classic.correlate` both ways on a random
image for several Gaussian kernel sizes and prints the measured speed-up (best of the repeats: the
minimum is the least disturbed by other processes, as ``timeit`` recommends). For scale, the last
column times scipy's compiled ``ndimage.correlate`` with the full 2-D kernel.

    python benchmarks/separable_filters.py [--size 512] [--repeats 5] [--kernel-sizes 3 5 9 15 25 41]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage

from cnnkit.classic.filters import BOUNDARY_TO_SCIPY, correlate, gaussian, separate


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--kernel-sizes", type=int, nargs="+", default=[3, 5, 9, 15, 25, 41])
    ap.add_argument("--boundary", default="mirror")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    image = rng.random((args.size, args.size))
    print(f"image {args.size}x{args.size} float64, boundary {args.boundary!r}, best of {args.repeats} runs")
    print(
        f"{'kernel':>8} {'2-D (ms)':>10} {'separable (ms)':>15} {'speed-up':>9} {'max |diff|':>11} {'scipy 2-D (ms)':>15}"
    )
    for n in args.kernel_sizes:
        k = gaussian(sigma=n / 6, size=n)
        assert separate(k) is not None, "a Gaussian kernel is rank 1"
        full = correlate(image, k, boundary=args.boundary, separable=False)
        sep = correlate(image, k, boundary=args.boundary, separable=True)
        t2d = best_time(
            lambda k=k: correlate(image, k, boundary=args.boundary, separable=False), args.repeats
        )
        tsep = best_time(
            lambda k=k: correlate(image, k, boundary=args.boundary, separable=True), args.repeats
        )
        mode = BOUNDARY_TO_SCIPY[args.boundary]
        tsc = best_time(lambda k=k, mode=mode: ndimage.correlate(image, k, mode=mode), args.repeats)
        print(
            f"{n:>4}x{n:<3} {t2d * 1e3:>10.2f} {tsep * 1e3:>15.2f} {t2d / tsep:>8.1f}x "
            f"{np.abs(full - sep).max():>11.1e} {tsc * 1e3:>15.2f}"
        )


if __name__ == "__main__":
    main()
