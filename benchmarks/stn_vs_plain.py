"""Spatial transformer vs plain LeNet-5 on affinely distorted digits (mean of several seeds).

The 1,797 scikit-learn digits are upsampled to 28x28, centred on a 40x40 black canvas and each one
distorted once by its own random affine map: rotation uniform in +-45 degrees, scale uniform in
0.7-1.2 and a shift of up to 4 pixels per axis (seed 0; train, validation and test images alike).
``lenet5`` and ``stn_lenet5`` (LeNet-5 behind a spatial transformer, `cnnkit models`) train with the
same recipe, the same number of epochs and no augmentation, once per seed; the script prints the
test accuracy of each run and the means, and draws distorted test digits above what the spatial
transformer of the first seed makes of them (``docs/stn_straighten.png``).

    python benchmarks/stn_vs_plain.py [--epochs 8] [--seeds 0 1 2] [--jobs 3] [--png docs/stn_straighten.png]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import cnnkit
from cnnkit.data import ImageData
from cnnkit.data.registry import RawDataset, register_dataset
from cnnkit.explain.distort import pad_to, random_affine

SIZE = 40


@register_dataset("digits_affine", "scikit-learn digits, 28 px on a 40 px canvas, random rotation/scale/shift",
                  num_classes=10, image_shape=(1, SIZE, SIZE), split_sizes={"all": 1797})  # fmt: skip
def digits_affine(root: str | None = None, download: bool = False) -> RawDataset:
    """The distorted digits (each image distorted once, seed 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = pad_to(F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False), SIZE)
    x, _ = random_affine(x, max_rotate=45.0, scale=(0.7, 1.2), max_shift=4.0, seed=0)
    imgs = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(d.target.astype(np.int64))
    return RawDataset(
        [str(i) for i in range(10)],
        {"all": ImageData(imgs, labels, [f"digits/{i}" for i in range(len(imgs))])},
    )


def _train_seed(seed: int, args: argparse.Namespace, runs: str) -> dict[str, tuple[float, str]]:
    """Both models trained with one seed: model -> (test accuracy, run folder)."""
    torch.set_num_threads(args.threads)
    out = {}
    for model in MODELS:
        t = time.perf_counter()
        r = cnnkit.train(model=model, data="digits_affine", input_size=SIZE, epochs=args.epochs, seed=seed,
                         augment="none", optimizer=args.optimizer, lr=args.lr, runs_dir=runs,
                         name=f"{model}-{seed}", quiet=True)  # fmt: skip
        print(f"seed {seed}  {model:11s} test accuracy {r.test_accuracy:.2%}  ({time.perf_counter() - t:.0f} s)",
              flush=True)  # fmt: skip
        out[model] = (r.test_accuracy, str(r.run_dir))
    return out


MODELS = ("lenet5", "stn_lenet5")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--png", default="docs/stn_straighten.png")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        if args.jobs > 1:  # fork: the workers inherit the registered dataset
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("fork")) as pool:
                results = list(
                    pool.map(_train_seed, args.seeds, [args] * len(args.seeds), [runs] * len(args.seeds))
                )
        else:
            results = [_train_seed(s, args, runs) for s in args.seeds]
        acc = {m: [r[m][0] for r in results] for m in MODELS}
        print(f"\n{args.epochs} epochs, {args.optimizer} lr {args.lr:g}, no augmentation, mean of {len(args.seeds)} "
              f"seeds ({time.perf_counter() - t0:.0f} s in all):")  # fmt: skip
        for model, v in acc.items():
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            print(f"  {model:11s} {statistics.mean(v):.2%} +- {sd:.2%}  ({', '.join(f'{a:.1%}' for a in v)})")
        gain = statistics.mean(acc["stn_lenet5"]) - statistics.mean(acc["lenet5"])
        print(f"  spatial transformer gain: {gain * 100:+.1f} points")
        if args.png:
            from cnnkit.explain.stn_view import stn_figure

            out = stn_figure(results[0]["stn_lenet5"][1], args.png, n=12)
            print(f"written to {out.path}")


if __name__ == "__main__":
    main()
