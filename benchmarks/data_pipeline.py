"""Data pipeline speed: images per second from a folder of JPEGs, four ways, and what training sees.

Generates one folder of small JPEGs (default 20,000 at 32x32, 10 classes) and one of larger ones
(default 2,000 at 224x224), then measures on the same files:

(a) torchvision ``ImageFolder`` + ``DataLoader`` with per-sample transforms (random crop with
    padding, flip, ``ToTensor``, ``Normalize``), the textbook pipeline;
(b) cnnkit's in-memory path: decode once in parallel threads into a uint8 tensor (and cache it),
    then a second load that hits the cache, then epochs of batched augmentation on whole tensors;
(c) cnnkit's streaming path (``memory_budget_mb=0``): threads decode each batch, the same batched
    augmentation runs after collation;

and LeNet-5 training images/second fed by (b) against the same loop on random tensors already in
memory, which is the compute ceiling (no data work at all). Timings are the best of a few repeats
(the least disturbed by other processes). Runs in about a minute on 2 idle cores.

    python benchmarks/data_pipeline.py [--n 20000] [--n-large 2000] [--workers 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CLASSES = [f"class{k}" for k in range(10)]
AUGMENT = "translate=2,flip"  # the same augmentation in (a), (b) and (c): pad-and-crop by 2, flip


def make_jpegs(root: Path, n: int, size: int, seed: int, distinct: int = 1000) -> float:
    """``n`` JPEGs in 10 class folders: smooth colour blobs whose hue depends on the class.

    ``distinct`` different images are encoded and their bytes written to ``n`` files (encoding is
    not what is measured; every file is still read and decoded on its own).
    """
    import io

    from PIL import Image

    def encode(i: int) -> bytes:
        rng = np.random.default_rng(seed + i)
        k = i % 10
        base = np.array([(k * 25) % 256, (255 - k * 20) % 256, (k * 70) % 256], dtype=np.float32)
        small = rng.normal(0, 40, (8, 8, 3)).astype(np.float32) + base
        img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        return buf.getvalue()

    t0 = time.perf_counter()
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
    blobs = [encode(i) for i in range(min(distinct, n))]
    for i in range(n):
        (root / CLASSES[i % 10] / f"{i:06d}.jpg").write_bytes(blobs[i % len(blobs)])
    return time.perf_counter() - t0


def best_rate(fn, repeats: int) -> float:
    """Images per second of ``fn()`` (which returns how many images it handled): best of ``repeats``."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        k = fn()
        best = max(best, k / (time.perf_counter() - t0))
    return best


def imagefolder_rate(root: Path, size: int, workers: int, repeats: int, batch: int = 128) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.RandomCrop(size, padding=2), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
    ])  # fmt: skip
    ds = datasets.ImageFolder(str(root), transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0)  # fmt: skip

    def epoch() -> int:
        return sum(len(y) for _, y in loader)

    return best_rate(epoch, repeats)


def loader_rate(loader, repeats: int) -> float:
    state = {"epoch": 0}

    def epoch() -> int:
        loader.set_epoch(state["epoch"])
        state["epoch"] += 1
        return sum(len(y) for _, y in loader)

    return best_rate(epoch, repeats)


def train_rate(batches, steps: int, repeats: int) -> float:
    """LeNet-5 SGD steps per second x batch size, over ``steps`` batches drawn from ``batches()``."""
    from cnnkit.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_chans=3, input_size=(32, 32))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run() -> int:
        n = 0
        for i, (x, y) in enumerate(batches()):
            if i == steps:
                break
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        return n

    for i, (x, y) in enumerate(batches()):  # warm-up
        if i == 5:
            break
        loss_fn(model(x), y).backward()
    return best_rate(run, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="number of 32x32 JPEGs (default 20,000)")
    ap.add_argument("--n-large", type=int, default=2000, help="number of 224x224 JPEGs (default 2,000)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader worker processes for (a)")
    ap.add_argument("--repeats", type=int, default=2, help="epochs timed per measurement (best is kept)")
    ap.add_argument("--dir", help="folder for the generated images (default: a temporary folder, removed after)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--steps", type=int, default=50, help="training steps timed per measurement")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from cnnkit.data import Augment, Normalize, load_dataset, make_loader

    t_start = time.perf_counter()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="cnnkit-bench-"))
    os.environ["CNNKIT_CACHE"] = str(work / "cache")  # a cold cache: the first load decodes
    small, large = work / "jpeg32", work / "jpeg224"
    shutil.rmtree(work / "cache", ignore_errors=True)
    print(f"cnnkit data pipeline benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; augmentation {AUGMENT!r}; images in {work}")  # fmt: skip
    for folder, n, size in ((small, args.n, 32), (large, args.n_large, 224)):
        if not folder.is_dir() or sum(1 for _ in folder.rglob("*.jpg")) != n:
            shutil.rmtree(folder, ignore_errors=True)
            print(f"  generated {n:,} {size}x{size} JPEGs in {make_jpegs(folder, n, size, seed=size):.1f} s")
    rows: list[tuple[str, str]] = []

    def report(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"  {name:<58} {value}")

    try:
        print(f"(a) torchvision ImageFolder + DataLoader ({args.workers} workers), per-sample transforms")
        report("32x32, one epoch", f"{imagefolder_rate(small, 32, args.workers, args.repeats):>9,.0f} img/s")
        report("224x224, one epoch", f"{imagefolder_rate(large, 224, args.workers, args.repeats):>9,.0f} img/s")

        print("(b) cnnkit in memory: decode once (parallel threads) into a uint8 tensor, cached on disk")
        load_dataset("digits")  # imports (scikit-learn, ...) done before the clock starts
        t0 = time.perf_counter()
        ds = load_dataset(f"folder:{small}", input_size=32)
        first = time.perf_counter() - t0
        n_all = len(ds.train) + len(ds.val) + len(ds.test)
        c = ds.info["cache"]
        report("first load (scan + decode + write cache)", f"{first:9.2f} s  ({n_all / first:,.0f} img/s)")
        report("  of which decoding", f"{c['decode_seconds']:9.2f} s  ({n_all / c['decode_seconds']:,.0f} img/s)")
        t0 = time.perf_counter()
        ds = load_dataset(f"folder:{small}", input_size=32)
        second = time.perf_counter() - t0
        assert ds.info["cache"]["hit"], "the second load should hit the cache"
        report("second load (scan + cache hit)", f"{second:9.2f} s  ({n_all / second:,.0f} img/s)")
        norm = Normalize(ds.mean, ds.std)
        aug = Augment.from_spec(AUGMENT)
        mem = make_loader(ds.train, 128, norm, shuffle=True, augment=aug)
        report("epoch over the train split with augmentation", f"{loader_rate(mem, args.repeats + 1):>9,.0f} img/s")

        print("(c) cnnkit streaming: threads decode each batch, batched augmentation after collation")
        st = load_dataset(f"folder:{small}", input_size=32, memory_budget_mb=0)
        report("32x32, epoch over the train split", f"{loader_rate(make_loader(st.train, 128, norm, shuffle=True, augment=aug), args.repeats):>9,.0f} img/s")  # fmt: skip
        st = load_dataset(f"folder:{large}", input_size=224, memory_budget_mb=0)
        norm224 = Normalize(st.mean, st.std)
        report("224x224, epoch over the train split", f"{loader_rate(make_loader(st.train, 64, norm224, shuffle=True, augment=aug), args.repeats):>9,.0f} img/s")  # fmt: skip

        print("LeNet-5 training (SGD, batch 128, CPU), images/second")
        steps = min(len(mem), args.steps)
        g = torch.Generator().manual_seed(0)
        fixed = [(torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g))
                 for _ in range(steps)]  # fmt: skip
        ceiling = fed = fed_plain = 0.0
        plain = make_loader(ds.train, 128, norm, shuffle=True)
        for _ in range(2):  # interleaved, so a burst of load from elsewhere hits both alike
            ceiling = max(ceiling, train_rate(lambda: iter(fixed), steps, args.repeats))
            fed = max(fed, train_rate(lambda: iter(mem), steps, args.repeats))
            fed_plain = max(fed_plain, train_rate(lambda: iter(plain), steps, args.repeats))
        report("random tensors already in memory (compute ceiling)", f"{ceiling:>9,.0f} img/s")
        report("fed by (b), no augmentation", f"{fed_plain:>9,.0f} img/s  ({fed_plain / ceiling:.0%} of ceiling)")
        report(f"fed by (b), augmentation {AUGMENT}", f"{fed:>9,.0f} img/s  ({fed / ceiling:.0%} of ceiling)")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
