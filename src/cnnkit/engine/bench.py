"""``cnnkit bench``: how fast a model trains and predicts on this machine, and what limits it.

One run on one device measures, each as the median of ``repeats`` timed blocks of ``steps`` steps after
``warmup`` untimed ones (the device is synchronised before every clock reading):

* **training**: images/s through :meth:`~cnnkit.engine.loop.Trainer.train_step`, the step ``cnnkit train``
  runs (autocast, auxiliary heads, loss scaling), on one batch already on the device;
* **inference**: images/s of the model in eval mode under ``torch.inference_mode``, at the batch the
  evaluation uses (``max(256, batch)``);
* **achieved GFLOP/s** of both: FLOPs per image from :func:`cnnkit.analyze.summary` (2 per multiply-add;
  a training step counts 3x the forward pass, the usual estimate for forward + backward) times images/s,
  as a percentage of a **matmul peak** measured in the same run (a large square matmul in float32, and in
  the autocast dtype when mixed precision is on);
* **data pipeline**: images/s of the training loader alone (uint8 batch -> augmentation -> normalisation,
  :func:`cnnkit.data.loader.to_model_input`; files are decoded too when ``--data`` streams), with the
  augmentation ``--augment auto`` picks for the data.

Without ``data`` the images are synthetic (uniform noise of the requested shape, in memory), so nothing
is downloaded or read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..config import TrainConfig
from ..data import DatasetSplits, ImageData
from ..errors import ConfigError, ModelError
from ..models import create_model, model_entry
from ..run import WeightsMeta
from .bench_result import BenchResult, Peak, Timing
from .device import autocast, select_device, synchronize
from .loop import Trainer
from .train import load_data_for, resolve_augment, resolve_config

PEAK_SIDE = {"cuda": 8192, "mps": 4096, "cpu": 2048}  # matmul side: large enough to reach each device's peak
PEAK_SECONDS = 0.2  # each timed block of the peak matmul lasts about this long
MIN_BLOCK_S = 0.1  # a timed block of steps lasts at least this long (more steps for fast workloads)
MAX_STEPS = 10_000


# ---------------------------------------------------------------------------------------------- timing
def time_blocks(step: Callable[[], int], device: torch.device, steps: int, warmup: int, repeats: int,
                batch: int) -> Timing:  # fmt: skip
    """``warmup`` untimed steps, then ``repeats`` timed blocks of at least ``steps`` steps each.

    ``step`` returns its image count. A fast workload (the data pipeline of a small model) gets more steps
    per block, sized from the last warmup step (none with ``warmup=0``), so each block lasts at least
    :data:`MIN_BLOCK_S` and the clock's resolution and one stray interruption do not decide the result (as ``timeit``'s autorange). Hand-written rather than
    ``torch.utils.benchmark.Timer``: the images must be counted from the very calls that are timed (a
    streamed batch can lose unreadable files), and the training step changes the model, so the blocks run
    back to back on one model.
    """
    one = None  # seconds of the last warmup step, which sizes the blocks
    for _ in range(warmup):
        synchronize(device)
        t0 = time.perf_counter()
        step()
        synchronize(device)
        one = time.perf_counter() - t0
    if one is not None:
        steps = max(steps, min(MAX_STEPS, math.ceil(MIN_BLOCK_S / max(one, 1e-9))))
    synchronize(device)  # the clock starts on an idle device
    images, seconds = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = sum(step() for _ in range(steps))
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
        images.append(n)
    return Timing(images, seconds, batch, steps)


def matmul_peak(device: torch.device, dtype: torch.dtype, repeats: int, count: int | None = None) -> Peak:
    """GFLOP/s of a large square matmul on ``device`` in ``dtype``: the practical ceiling for dense layers.

    ``count`` matmuls per timed block (default: as many as last :data:`PEAK_SECONDS`).
    """
    n = PEAK_SIDE.get(device.type, 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=device, dtype=dtype)
    torch.mm(a, b)  # warm up (kernel choice, thread pool)
    synchronize(device)
    if count is None:
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        count = max(1, round(PEAK_SECONDS / max(time.perf_counter() - t0, 1e-6)))
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(count):
            torch.mm(a, b)
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return Peak(str(dtype).removeprefix("torch."), n, count, seconds)


def _peaks(device: torch.device, dtypes: list[torch.dtype], repeats: int,
           before: dict[str, Peak] | None = None) -> dict[str, Peak]:  # fmt: skip
    """Matmul peaks per dtype; ``before``: the same measured earlier in the run, whose blocks are kept too."""
    out = {}
    for dt in dtypes:
        name = str(dt).removeprefix("torch.")
        first = before.get(name) if before else None
        p = matmul_peak(device, dt, repeats, first.count if first else None)
        out[name] = Peak(name, p.n, p.count, (first.seconds if first else []) + p.seconds)
    return out


# ---------------------------------------------------------------------------------------------- set-up
def _check(name: str, value: Any, lo: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(
            f"{name} must be a whole number >= {lo}, got {value!r}", hint=f"e.g. {name} {max(lo, 2)}"
        )


def synthetic_data(shape: tuple[int, int, int], classes: int, n: int, seed: int = 0) -> DatasetSplits:
    """``n`` images of uniform uint8 noise with cycling labels, in memory (val and test empty)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    train = ImageData(images, torch.arange(n) % classes, [f"synthetic/{i}" for i in range(n)])
    empty = ImageData(images[:0], train.labels[:0], [])
    c = shape[0]
    return DatasetSplits(
        "synthetic", [str(i) for i in range(classes)], train, empty, empty, (0.5,) * c, (0.29,) * c
    )


def _macs(model: torch.nn.Module, name: str, shape: tuple[int, int, int]) -> tuple[int, int]:
    """Multiply-adds of one image and parameters the eval-mode pass never runs (cnnkit's own counter).

    A model that cannot take ``shape`` fails here, before anything is timed.
    """
    from ..analyze import summary

    try:
        totals = summary(model, input_size=shape).totals
        return totals.macs, totals.params_not_run
    except ModelError as e:
        c, h, w = shape
        raise ModelError(f"{name} cannot take a {c}x{h}x{w} input: {e.message.split(': ', 1)[-1]}",
                         hint="pick another --input-size (or --channels); `cnnkit models` lists each model's "
                         "input") from None  # fmt: skip


def _first_batch(loader: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The loader's first batch, repeated up to ``n`` images when the split is smaller (same memory format)."""
    x, y = next(iter(loader))
    if len(y) < n:
        reps = -(-n // len(y))
        fmt = torch.channels_last if getattr(loader, "channels_last", False) else torch.contiguous_format
        x, y = x.repeat(reps, 1, 1, 1)[:n].contiguous(memory_format=fmt), y.repeat(reps)[:n]
    return x, y


def _endless(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def bench(
    model: str,
    *,
    batch_size: int = 64,
    infer_batch: int | None = None,
    input_size: int | None = None,
    channels: int | None = None,
    classes: int | None = None,
    device: str = "auto",
    amp: str = "auto",
    steps: int = 5,
    warmup: int = 2,
    repeats: int = 3,
    data: str | None = None,
    augment: str = "auto",
    data_root: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Training, inference and data-pipeline images/s of ``model``, and GFLOP/s against a matmul peak.

    ``infer_batch``: the inference batch (default: the evaluation's, ``max(256, batch_size)``).
    ``data``: a dataset spec as ``cnnkit train --data`` (default: synthetic images of ``channels`` x
    ``input_size``, ``classes`` classes; by default the model's input and 10 classes below 64 px, else
    1000). ``amp``: ``auto`` (on for CUDA, as training), ``on`` or ``off``. ``progress(text)`` is told
    each stage as it starts.
    """
    for name, value, lo in (("--batch-size", batch_size, 1), ("--steps", steps, 1), ("--warmup", warmup, 0),
                            ("--repeats", repeats, 1)):  # fmt: skip
        _check(name, value, lo)
    if infer_batch is None:
        infer_batch = max(256, batch_size)  # the evaluation's batch (Trainer.loader)
    for name, value in (("--infer-batch", infer_batch), ("--input-size", input_size), ("--channels", channels),
                        ("--classes", classes)):  # fmt: skip
        if value is not None:
            _check(name, value, 1)
    if data is not None and (channels is not None or classes is not None):
        raise ConfigError("--channels and --classes describe synthetic images; with --data the data sets them",
                          hint="leave --channels/--classes out, or --data out")  # fmt: skip
    say = progress or (lambda text: None)
    dev = select_device(device)
    opts: dict[str, Any] = {"model": model, "batch_size": batch_size, "device": device, "amp": amp,
                            "augment": augment, "input_size": input_size}  # fmt: skip
    if data is not None:
        say(f"loading {data}")
        cfg = resolve_config(TrainConfig.from_dict({**opts, "data": data, "data_root": data_root}))
        splits = load_data_for(cfg)
    else:
        external = ":" in model
        c0, side, _ = (3, 224, 224) if external else model_entry(model).default_input
        side = input_size or side
        shape = (channels or c0, side, side)
        k = classes or (10 if side < 64 else 1000)
        # Enough images for one evaluation batch; every training batch is full.
        n = batch_size * max(2, -(-infer_batch // batch_size))
        cfg = resolve_config(TrainConfig.from_dict({**opts, "input_size": side}))
        mb = n * math.prod(shape) / 2**20
        if mb > cfg.memory_budget_mb:  # the images alone; a typo like --batch-size 60000 at 224 px
            size = "x".join(map(str, shape))
            raise ConfigError(f"--batch-size {batch_size} and --infer-batch {infer_batch} at {size} need {mb:,.0f} "
                              f"MB of synthetic images, more than {cfg.memory_budget_mb:,} MB",
                              hint="use a smaller --batch-size, --infer-batch or --input-size")  # fmt: skip
        splits = synthetic_data(shape, k, n, seed=cfg.seed)
    cfg = resolve_augment(cfg, splits)  # `auto`: what cnnkit train would choose for these images
    c, h, w = splits.image_shape
    torch.manual_seed(cfg.seed)
    net = create_model(
        cfg.model, num_classes=splits.num_classes, in_chans=c, input_size=(h, w), **cfg.model_args
    )
    say("counting multiply-adds")
    macs, not_run = _macs(net, cfg.model, (c, h, w))
    meta = WeightsMeta(model=cfg.model, model_args=cfg.model_args, num_classes=splits.num_classes,
                       classes=splits.classes, input_size=[c, h, w], mean=list(splits.mean), std=list(splits.std),
                       dataset=data or "synthetic", source="bench")  # fmt: skip
    trainer = Trainer(net, cfg, splits, meta, None, dev)
    # The peak is measured before and after the workloads (its fastest block counts), so a machine that
    # speeds up or slows down during the run (clocks, another process) does not make a model beat it.
    say("measuring the matmul peak")
    dtypes = [torch.float32] + ([trainer.amp] if trainer.amp is not None else [])
    peaks = _peaks(dev, dtypes, repeats)

    def t(what: str, fn: Callable[[], int], batch: int) -> Timing:
        say(f"timing {what}")
        try:
            return time_blocks(fn, dev, steps, warmup, repeats, batch)
        except (torch.OutOfMemoryError, MemoryError):
            raise ConfigError(f"{what} at batch {batch} does not fit in the memory of {dev}",
                              hint="use a smaller --batch-size or --input-size") from None  # fmt: skip

    x, y = _first_batch(trainer.train_loader, batch_size)
    trainer.model.train()

    def train_step() -> int:
        trainer.train_step(x, y)
        return len(y)

    train = t("the training step", train_step, batch_size)
    xi, _ = _first_batch(trainer.loader(splits.train, infer_batch), infer_batch)
    trainer.model.eval()

    def infer() -> int:
        with torch.inference_mode(), autocast(dev, trainer.amp):
            trainer.model(xi)
        return len(xi)

    inference = t("inference", infer, infer_batch)
    batches = _endless(trainer.train_loader)

    def load() -> int:
        return len(next(batches)[1])

    pipeline = t("the data pipeline", load, batch_size)
    say("measuring the matmul peak again")
    peaks = _peaks(dev, dtypes, repeats, before=peaks)
    notes = []
    worst = max(tm.spread for tm in (train, inference, pipeline))
    if worst > 0.2:
        notes.append(
            f"the repeated timings disagree by up to {worst:.0%}: the device was busy with other work "
            "or changed speed; the medians are less certain (run on an idle machine, or more --repeats)"
        )
    if not_run:  # GoogLeNet's auxiliary classifiers: trained by the step, absent from the eval-mode count
        notes.append(
            f"FLOPs count the eval-mode forward pass: {not_run:,} parameters that only training runs "
            "(auxiliary heads) are not counted, so training GFLOP/s are a little low"
        )
    return BenchResult(
        model=cfg.model, input_size=(c, h, w), num_classes=splits.num_classes, device=str(dev),
        threads=torch.get_num_threads(), amp=str(trainer.amp).removeprefix("torch.") if trainer.amp else None,
        channels_last=trainer.channels_last, data=data or "synthetic", augment=cfg.augment, macs_per_image=macs,
        train=train, inference=inference, pipeline=pipeline, peaks=peaks, warmup=warmup, repeats=repeats,
        notes=notes,
    )  # fmt: skip
