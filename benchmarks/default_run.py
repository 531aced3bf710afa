"""Seconds per epoch and test accuracy of ``cnnkit train`` with every default (LeNet-5 on digits, seed 0).

Issue 13's check that the tuned default is no slower per epoch and at least as accurate as before:
run it with this checkout, then with an older one on the path, and compare::

    python benchmarks/default_run.py
    PYTHONPATH=OLD_CHECKOUT/src python benchmarks/default_run.py
"""

from __future__ import annotations

import statistics
import tempfile

import torch

import cnnkit


def main() -> None:
    with tempfile.TemporaryDirectory() as runs:
        result = cnnkit.train(quiet=True, runs_dir=runs, name="default")
    seconds = [row["time_s"] for row in result.history]
    print(f"cnnkit from {cnnkit.__file__}, {torch.get_num_threads()} thread(s): {len(seconds)} epochs, median "
          f"{statistics.median(seconds):.3f} s per epoch, test accuracy {result.test_accuracy:.2%}")  # fmt: skip


if __name__ == "__main__":
    main()
