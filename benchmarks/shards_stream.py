"""Streaming from tar shards (``--data shards:DIR``): peak memory and training speed against dataset size.

Packs two generated sets of 32x32 colour images in 10 classes, a large one (default 200,000) and a
small one (default 20,000), with cnnkit's pack writer (``PackWriter``: the same tar shards, index and
checksums as ``cnnkit pack``; 1,000 distinct images are encoded and their bytes reused, since
encoding is not what is measured). Then, each measurement in a fresh subprocess so its peak RSS
(``resource.getrusage``) is its own, it trains LeNet-5 for a fixed number of SGD steps:

* streaming: ``open_pack`` (checksums verified) and the ``StreamLoader`` (seeded exact shuffle,
  batches read by offset and decoded by threads) on the large and on the small set;
* in memory: the small set decoded into one uint8 tensor first, then the ``TensorLoader``.

Acceptance (issue 14): streaming peak RSS on the large set <= 1.25x that on the small set, and
streaming images/s >= 80% of in-memory images/s. Both encodings are measured: ``png`` (decoded per
batch) and ``raw`` (uint8 pixels, no decoding). Each rate is the best of ``--repeats`` runs (the
least disturbed by other processes on a shared machine).

    python benchmarks/shards_stream.py [--n-large 200000] [--n-small 20000] [--steps 150] [--dir DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE, CLASSES, DISTINCT = 32, 10, 1000


def images(seed: int = 0) -> list[np.ndarray]:
    """``DISTINCT`` smooth colour blobs (32x32x3 uint8) whose hue depends on the class (``i % 10``)."""
    from PIL import Image

    out = []
    for i in range(DISTINCT):
        rng = np.random.default_rng(seed + i)
        k = i % CLASSES
        base = np.array([(k * 25) % 256, (255 - k * 20) % 256, (k * 70) % 256], dtype=np.float32)
        small = np.clip(rng.normal(0, 40, (8, 8, 3)).astype(np.float32) + base, 0, 255).astype(np.uint8)
        out.append(np.asarray(Image.fromarray(small).resize((SIZE, SIZE), Image.BILINEAR)))
    return out


def make_pack(folder: Path, n: int, encoding: str) -> float:
    """A pack of ``n`` training images (1% each for val and test); returns seconds taken."""
    from PIL import Image

    from cnnkit.data.packing import PackWriter

    t0 = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)  # the benchmark's own scratch folder
    folder.mkdir(parents=True)
    blobs = []
    for a in images():
        if encoding == "raw":
            blobs.append(a.tobytes())
        else:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "PNG", compress_level=1)
            blobs.append(buf.getvalue())
    ext = "u8" if encoding == "raw" else "png"
    w = PackWriter(folder, shard_size=10_000)
    held = max(1, n // 100)
    for split, count in (("train", n - 2 * held), ("val", held), ("test", held)):
        w.start_split(split)
        for i in range(count):
            j = i % DISTINCT
            w.add(ext, blobs[j], j % CLASSES, f"gen/{split}/{i:07d}")
    w.finish([f"class{k}" for k in range(CLASSES)], (3, SIZE, SIZE), encoding, {"source": f"generated {n}"})
    return time.perf_counter() - t0


def measure(
    pack: str, mode: str, steps: int, batch: int, repeats: int, threads: int | None = None, shuffle_buffer: int = 0
) -> dict:
    """Runs in its own process: LeNet-5 steps/s fed from ``pack``, and this process's peak RSS.

    ``shuffle_buffer`` > 0: streamed in sequence through a shuffle buffer (``BufferedShardLoader``).
    """
    import torch

    from cnnkit.data import Normalize
    from cnnkit.data.loader import TensorLoader, make_loader
    from cnnkit.data.shards import open_pack
    from cnnkit.models import create_model

    create_model(
        "lenet5", num_classes=CLASSES, in_chans=3, input_size=(SIZE, SIZE)
    )  # its imports, before the baseline
    base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # everything but the data
    t0 = time.perf_counter()
    index, splits = open_pack(pack)
    train = splits["train"]
    norm = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    if mode == "memory":
        loader = TensorLoader(train.load(), batch, norm, shuffle=True, drop_last=True)
    else:
        train.shuffle_buffer = shuffle_buffer
        loader = make_loader(train, batch, norm, shuffle=True, drop_last=True, threads=threads)
    open_s = time.perf_counter() - t0
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=CLASSES, in_chans=3, input_size=(SIZE, SIZE))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def batches():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    def run(k: int) -> tuple[float, float]:
        """Images per wall-clock second, and per CPU second of this process (all its threads)."""
        it, n = batches(), 0
        t, c = time.perf_counter(), _cpu_seconds()
        for _ in range(k):
            x, y = next(it)
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        return n / (time.perf_counter() - t), n / max(_cpu_seconds() - c, 1e-9)

    run(5)  # warm-up
    rates = [run(steps) for _ in range(repeats)]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "rate": max(r[0] for r in rates),
        "cpu_rate": max(r[1] for r in rates),
        "peak_rss_mb": peak_mb,
        "base_rss_mb": base_mb,
        "open_s": open_s,
        "samples": len(train),
    }


def _cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def sub_measure(pack: Path, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--measure", mode, "--pack", str(pack), "--steps", str(args.steps),
           "--batch", str(args.batch), "--repeats", str(args.repeats), "--shuffle-buffer", str(args.shuffle_buffer)]
    cmd += ["--threads", str(args.threads)] if args.threads else []  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-large", type=int, default=200_000)
    p.add_argument("--n-small", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=150, help="timed SGD steps per repeat")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="timed runs per process (the best counts)")
    p.add_argument(
        "--rounds", type=int, default=2, help="processes per measurement, interleaved (the best counts)"
    )
    p.add_argument("--encodings", default="png,raw")
    p.add_argument(
        "--threads", type=int, default=None, help="streaming decode threads (default: the loader's)"
    )
    p.add_argument(
        "--dir", default=None, help="where to write the packs (default: a temporary folder, removed)"
    )
    p.add_argument("--shuffle-buffer", type=int, default=0, metavar="N",
                   help="stream in sequence through a shuffle buffer of N samples (default 0: by offset)")  # fmt: skip
    p.add_argument("--measure", choices=("stream", "memory"), help=argparse.SUPPRESS)
    p.add_argument("--pack", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:  # the subprocess side
        print(
            json.dumps(measure(args.pack, args.measure, args.steps, args.batch, args.repeats, args.threads,
                               args.shuffle_buffer))  # fmt: skip
        )
        return
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="cnnkit-shards-bench-"))
    how = f"in sequence, shuffle buffer {args.shuffle_buffer:,}" if args.shuffle_buffer > 0 else "by offset"
    print(f"LeNet-5, 32x32 RGB, batch {args.batch}, {args.steps} timed steps (best of {args.repeats}), "
          f"{os.cpu_count()} CPUs, streamed {how}, packs in {base}")  # fmt: skip
    try:
        for enc in args.encodings.split(","):
            for n in (args.n_small, args.n_large):
                folder = base / f"{enc}-{n}"
                secs = make_pack(folder, n, enc)
                mb = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
                print(f"[{enc}] packed {n:,} images in {secs:.1f} s ({mb:,.0f} MB)")
            runs = {"stream-small": (args.n_small, "stream"), "stream-large": (args.n_large, "stream"),
                    "memory-small": (args.n_small, "memory")}  # fmt: skip
            res: dict[str, list[dict]] = {k: [] for k in runs}
            for _ in range(args.rounds):  # interleaved, so a burst of load elsewhere hits all three alike
                for k, (n, mode) in runs.items():
                    res[k].append(sub_measure(base / f"{enc}-{n}", mode, args))
            best = {k: {"rate": max(r["rate"] for r in v), "cpu_rate": max(r["cpu_rate"] for r in v),
                        "peak": max(r["peak_rss_mb"] for r in v), "base": min(r["base_rss_mb"] for r in v),
                        "open_s": min(r["open_s"] for r in v)} for k, v in res.items()}  # fmt: skip
            for k, (n, mode) in runs.items():
                b = best[k]
                print(
                    f"[{enc}] {mode:>6} {n:>7,}: {b['rate']:7,.0f} img/s wall, {b['cpu_rate']:7,.0f} img per CPU-s; "
                    f"peak RSS {b['peak']:5.0f} MB ({b['base']:.0f} MB before any data; opened in {b['open_s']:.1f} s)"
                )
            large, small, mem = best["stream-large"], best["stream-small"], best["memory-small"]
            rss = large["peak"] / small["peak"]
            grow = (large["peak"] - large["base"]) / max(small["peak"] - small["base"], 1)
            speed, cpu = large["rate"] / mem["rate"], large["cpu_rate"] / mem["cpu_rate"]
            print(f"[{enc}] peak RSS {args.n_large:,} / {args.n_small:,}: {rss:.2f}x (<= 1.25: "
                  f"{'PASS' if rss <= 1.25 else 'FAIL'}; above the baseline: {grow:.2f}x); streaming / in-memory: "
                  f"{speed:.0%} wall (>= 80%: {'PASS' if speed >= 0.8 else 'FAIL'}), {cpu:.0%} per CPU-s")  # fmt: skip
            if not args.dir:
                for n in (args.n_small, args.n_large):
                    shutil.rmtree(base / f"{enc}-{n}")
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
