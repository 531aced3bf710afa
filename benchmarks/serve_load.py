"""Load test of ``cnnkit serve``: latency percentiles and throughput, micro-batching on vs off.

Starts ``cnnkit serve RUN_DIR`` twice on 127.0.0.1 (free ports, their own processes): with
micro-batching (``--max-batch 32``) and without (``--max-batch 1``). Sends a bounded number of
``POST /predict`` requests (one digit image each) to each from ``--concurrency`` concurrent clients
(httpx, asyncio), in alternating rounds so that a change in background load hits both alike, and
prints p50/p95/p99 latency, throughput, errors and the mean batch the server ran. Without ``--run``
it first trains LeNet-5 on digits for one epoch in a temporary folder (weights do not change the cost).

    python benchmarks/serve_load.py [--run RUN_DIR] [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np


def digit_pngs(n: int = 32) -> list[bytes]:
    """``n`` scikit-learn digits as 32x32 PNG bytes (what a client would upload)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray((d.images[i] * 255 / 16).astype(np.uint8)).resize((32, 32)).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def start_server(
    run: str, max_batch: int, max_wait_ms: float, backend: str, threads: int, log: Path
) -> tuple[subprocess.Popen, str]:
    """``cnnkit serve`` in its own process on a free loopback port; returns it and its URL."""
    cmd = [sys.executable, "-m", "cnnkit", "serve", run, "--port", "0", "--max-batch", str(max_batch),
           "--max-wait-ms", str(max_wait_ms), "--backend", backend, "--device", "cpu", "--threads", str(threads)]  # fmt: skip
    fh = open(log, "w")  # noqa: SIM115 - the server writes its request log here while it lives
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.time() + 180
    while time.time() < deadline:
        m = re.search(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
        if m:
            url = m.group(1)
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


async def load(url: str, images: list[bytes], n: int, concurrency: int) -> tuple[list[float], int, float]:
    """Send ``n`` requests from ``concurrency`` workers; (latencies in s, errors, wall time in s)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                t0 = time.perf_counter()
                try:
                    r = await client.post(
                        url + "/predict", files=[("file", (f"{i}.png", images[i % len(images)]))]
                    )
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        wall = time.perf_counter() - t0
    return latencies, errors, wall


def measure(runs: list[tuple[str, str]], args: argparse.Namespace, images: list[bytes]) -> list[dict]:
    """Both servers measured in alternating rounds, so a change in background load hits both alike."""
    lat: dict[str, list[float]] = {u: [] for _, u in runs}
    errors = dict.fromkeys(lat, 0)
    wall = dict.fromkeys(lat, 0.0)
    for _, url in runs:
        asyncio.run(load(url, images, 50, args.concurrency))  # warm-up: allocator, thread pools, connections
    before = {u: httpx.get(u + "/health", timeout=10).json() for u in lat}
    per_round = [args.requests // args.rounds + (r < args.requests % args.rounds) for r in range(args.rounds)]
    for n in per_round:
        for _, url in runs:
            ls, e, w = asyncio.run(load(url, images, n, args.concurrency))
            lat[url] += ls
            errors[url] += e
            wall[url] += w
    rows = []
    for label, url in runs:
        after = httpx.get(url + "/health", timeout=10).json()
        ms = np.array(lat[url]) * 1000
        batches = after["batches"] - before[url]["batches"]
        rows.append({"mode": label, "requests": len(ms), "errors": errors[url], "p50": np.percentile(ms, 50),
                     "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99), "rps": len(ms) / wall[url],
                     "mean_batch": (after["images"] - before[url]["images"]) / max(1, batches)})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run folder to serve (default: train LeNet-5 on digits for one epoch)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=32, help="the micro-batching setting compared with 1")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    ap.add_argument("--threads", type=int, default=1,
                    help="server threads per network call (default 1: with more, a one-image call on a busy "
                    "2-core machine waits for threads spinning against each other)")  # fmt: skip
    ap.add_argument(
        "--rounds", type=int, default=4, help="alternating rounds per mode (fair under changing load)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnnkit-load-") as t:
        tmp = Path(t)
        run = args.run
        if run is None:
            import cnnkit

            print("training LeNet-5 on digits for one epoch ...", file=sys.stderr)
            run = str(cnnkit.train(epochs=1, name="lenet5", runs_dir=str(tmp / "runs"), quiet=True).run_dir)
        images = digit_pngs()
        print(f"{args.requests} requests (one 32x32 PNG each) at concurrency {args.concurrency} against 127.0.0.1, "
              f"backend {args.backend}, {args.threads} thread(s) per server, {os.cpu_count()} CPUs")  # fmt: skip
        on = start_server(run, args.max_batch, args.max_wait_ms, args.backend, args.threads, tmp / "on.log")
        off = start_server(run, 1, args.max_wait_ms, args.backend, args.threads, tmp / "off.log")
        try:
            rows = measure([(f"micro-batching on (max-batch {args.max_batch}, {args.max_wait_ms:g} ms)", on[1]),
                            ("micro-batching off (max-batch 1)", off[1])], args, images)  # fmt: skip
        finally:
            for proc, _ in (on, off):
                proc.terminate()
                proc.wait(timeout=30)
    print(f"{'mode':<44} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'batch':>6}")
    for r in rows:
        print(f"{r['mode']:<44} {r['errors']:>6} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['p99']:>8.1f} "
              f"{r['rps']:>8.1f} {r['mean_batch']:>6.1f}")  # fmt: skip
    print(f"micro-batching speed-up: {rows[0]['rps'] / rows[1]['rps']:.2f}x throughput, "
          f"p50 {rows[1]['p50'] / rows[0]['p50']:.2f}x lower")  # fmt: skip


if __name__ == "__main__":
    main()
