"""Why models carry training recipes: each one trained on digits with plain SGD and with its recipe.

README's model-recipe table. Every model is trained with ``cnnkit.train`` on the registered
``digits`` dataset at its default 32 px (seed 0, one thread per process), twice: with the plain
default a model without a recipe would get (SGD with Nesterov momentum 0.9 at lr 0.05, cosine, no
warmup) and with its own recipe (every option left unset). The epoch counts are the README's: enough
for the recipe to show what it fixes, short enough for a CPU. Prints the test accuracy of each run.

    python benchmarks/model_recipes.py              # about 10 minutes on 2 CPU cores
    python benchmarks/model_recipes.py --models vgg11_bn zfnet
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time

# model -> (epochs with plain SGD, epochs with its recipe); None: the model has no recipe (one run)
TABLE: dict[str, tuple[int, int | None]] = {
    "vgg11_bn": (6, 4), "vgg16_bn": (3, 3), "resnet18": (3, 3), "vgg11": (3, 6), "alexnet": (10, 10),
    "zfnet": (3, 6), "squeezenet1_1": (3, 10), "googlenet": (3, None), "mobilenet_v1": (3, None),
}  # fmt: skip
PLAIN_SGD = {"optimizer": "sgd", "lr": 0.05, "warmup_epochs": 0}


def run_job(job: tuple[str, str, int]) -> tuple[str, str, int, float, float]:
    """One training run in its own process: (model, "sgd" or "recipe", epochs, test accuracy, seconds)."""
    import torch

    torch.set_num_threads(1)
    import cnnkit

    model, kind, epochs = job
    options = PLAIN_SGD if kind == "sgd" else {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        r = cnnkit.train(model=model, data="digits", epochs=epochs, seed=0, runs_dir=runs, quiet=True, **options)
    return model, kind, epochs, r.test_accuracy, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(TABLE), default=list(TABLE))
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel worker processes")
    args = ap.parse_args(argv)
    jobs = [(m, "sgd", TABLE[m][0]) for m in args.models]
    jobs += [(m, "recipe", TABLE[m][1]) for m in args.models if TABLE[m][1] is not None]
    jobs.sort(key=lambda j: -j[2])  # longest first, so the pool ends together
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(max(1, args.jobs)) as pool:
        results = {(m, k): (e, acc, s) for m, k, e, acc, s in pool.imap_unordered(run_job, jobs)}
    print(f"digits, 32 px, seed 0, {args.jobs} process(es) of one thread ({time.perf_counter() - t0:.0f} s in all)")
    print(f"{'model':<15} {'SGD lr 0.05, no warmup':>24} {'its recipe':>14}")
    for m in args.models:
        e, acc, _ = results[(m, "sgd")]
        recipe = results.get((m, "recipe"))
        right = f"{recipe[1]:.1%} ({recipe[0]})" if recipe else "no recipe"
        print(f"{m:<15} {f'{acc:.1%} ({e})':>24} {right:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
