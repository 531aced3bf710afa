"""How long ``cnnkit summary`` takes (the issue asks for resnet50 under 5 s on a CPU).

Prints, for each model, the wall-clock and CPU time of the whole command (a fresh process: Python
start-up and imports included), then the in-process split: importing cnnkit, building + tracing,
and rendering the table. CPU time is the honest number on a shared machine: wall time grows with
whatever else runs on the cores.

    python benchmarks/summary_speed.py [MODEL ...]      (default: resnet50 vgg16 densenet121)
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def command_time(model: str) -> tuple[float, float]:
    """(wall, cpu) seconds of ``cnnkit summary MODEL`` in a new process."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnkit", "summary", model], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def main(models: list[str]) -> None:
    print(f"{'model':14s} {'command wall':>12s} {'command cpu':>12s}")
    for m in models:
        wall, cpu = command_time(m)
        print(f"{m:14s} {wall:11.2f}s {cpu:11.2f}s")

    t0, c0 = time.perf_counter(), _self_cpu()
    import cnnkit.cli  # noqa: F401  (what every `cnnkit` command pays before doing anything)
    from cnnkit.analyze import summary

    print(f"\nin process: import cnnkit  wall {time.perf_counter() - t0:.2f}s  cpu {_self_cpu() - c0:.2f}s")
    from rich.console import Console

    console = Console(file=open("/dev/null", "w"), width=250)  # noqa: SIM115
    for m in models:
        t0, c0 = time.perf_counter(), _self_cpu()
        s = summary(m)
        t1, c1 = time.perf_counter(), _self_cpu()
        console.print(s)
        t2, c2 = time.perf_counter(), _self_cpu()
        print(f"{m:14s} summary wall {t1 - t0:.2f}s cpu {c1 - c0:.2f}s | render wall {t2 - t1:.2f}s cpu {c2 - c1:.2f}s"
              f" | {len(s.rows)} rows, {s.totals.macs / 1e9:.2f} GMACs")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet50", "vgg16", "densenet121"])
