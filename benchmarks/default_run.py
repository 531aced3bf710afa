"""Seconds per epoch and test accuracy of ``cnnkit train`` with every default (LeNet-5 on digits).

Issue 13's check that the tuned default is no slower per epoch and at least as accurate as before:
run it with this checkout, then with an older one on the path, and compare::

    python benchmarks/default_run.py --seeds 5
    PYTHONPATH=OLD_CHECKOUT/src python benchmarks/default_run.py --seeds 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

import cnnkit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1, help="train with seeds 0..N-1 (default 1: seed 0 only)")
    args = ap.parse_args(argv)
    if args.seeds < 1:
        ap.error(f"--seeds {args.seeds}: give 1 or more")
    per_epoch, accs = [], []
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as runs:
            result = cnnkit.train(quiet=True, runs_dir=runs, name="default", seed=seed)
        seconds = [row["time_s"] for row in result.history]
        per_epoch.append(statistics.median(seconds))
        accs.append(result.test_accuracy)
        print(f"seed {seed}: {len(seconds)} epochs, median {per_epoch[-1]:.3f} s per epoch, "
              f"test accuracy {result.test_accuracy:.2%}", flush=True)  # fmt: skip
    print(f"cnnkit from {cnnkit.__file__}, {torch.get_num_threads()} thread(s): median {statistics.median(per_epoch):.3f} "
          f"s per epoch, test accuracy {', '.join(f'{a:.2%}' for a in accs)} (mean {statistics.mean(accs):.2%})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
