"""Data-parallel training on one machine's CPUs: 1 process against N (torchrun, gloo), same global batch.

Runs ``cnnkit train`` (LeNet-5 on scikit-learn's digits by default) once in one process and once
under ``torchrun --standalone --nproc_per_node=N``, with the same seed and global batch, and prints
for each: training seconds (from the run's summary.json, so start-up is not counted), test accuracy,
and the wall time of the whole command (process start-up, imports, rendezvous included).

On a 2-core machine expect no speed-up for a network as small as LeNet-5: each process gets one
core, and every step's gradient all-reduce costs more than it saves. The point on a CPU is that the
result is the same; the speed-up comes with GPUs (one process per device) or several machines.

    python benchmarks/ddp_cpu.py [--nproc 2] [--epochs 10] [--model lenet5] [--data digits]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], cwd: Path, threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("CNNKIT_MAX_EPOCHS", None)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    train = ["train", "--model", args.model, "--data", args.data, "--epochs", str(args.epochs),
             "--batch-size", str(args.batch_size), "--device", "cpu", "--quiet"]  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        cwd = Path(d)
        wall1 = run([sys.executable, "-m", "cnnkit", *train, "--name", "one"], cwd, threads=cores)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
        wall_n = run([*torchrun, "-m", "cnnkit", *train, "--name", "many"], cwd, threads=max(1, cores // args.nproc))
        rows = []
        for name, wall, procs in (("one", wall1, 1), ("many", wall_n, args.nproc)):
            s = json.loads((cwd / "runs" / name / "summary.json").read_text())
            rows.append((procs, s["timing"]["train_seconds"], s["test"]["acc"], wall))
    print(f"{args.model} on {args.data}, {args.epochs} epochs, global batch {args.batch_size}, {cores} CPU cores")
    print(f"{'processes':>9}  {'train s':>8}  {'test acc':>8}  {'wall s':>7}")
    for procs, t, acc, wall in rows:
        print(f"{procs:>9}  {t:>8.1f}  {acc:>8.2%}  {wall:>7.1f}")
    print(f"accuracy difference {abs(rows[0][2] - rows[1][2]) * 100:.2f} points; "
          f"training time ratio {rows[1][1] / rows[0][1]:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
