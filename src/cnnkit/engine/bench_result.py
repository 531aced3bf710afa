"""What :func:`cnnkit.engine.bench.bench` returns: timings, matmul peaks, and their table (rich) and JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

TRAIN_FLOPS_FACTOR = 3  # forward + backward ~ 3x the forward pass (backward: gradients of inputs and weights)


@dataclass
class Timing:
    """Repeated timings of one workload: images and seconds per timed block."""

    images: list[int]
    seconds: list[float]
    batch: int
    steps: int

    @property
    def rates(self) -> list[float]:
        return [n / s for n, s in zip(self.images, self.seconds, strict=True)]

    @property
    def images_per_s(self) -> float:
        """The median over the timed blocks of images / seconds."""
        return statistics.median(self.rates)

    @property
    def spread(self) -> float:
        """(fastest - slowest) / median block rate: how much the repeats disagree (0.05 = 5%)."""
        r = self.rates
        return (max(r) - min(r)) / self.images_per_s

    @property
    def ms_per_batch(self) -> float:
        return 1000 * self.batch / self.images_per_s

    def to_dict(self) -> dict[str, Any]:
        return {"images_per_s": self.images_per_s, "spread": self.spread, "ms_per_batch": self.ms_per_batch,
                "batch": self.batch, "steps": self.steps, "images": self.images, "seconds": self.seconds}  # fmt: skip


@dataclass
class Peak:
    """A measured matmul peak: ``n x n @ n x n`` in ``dtype``, ``count`` per timed block."""

    dtype: str
    n: int
    count: int
    seconds: list[float]

    @property
    def gflops(self) -> float:
        """The fastest block's rate: a peak is the best the device did (slower blocks were disturbed)."""
        return 2 * self.n**3 * self.count / min(self.seconds) / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {"gflops": self.gflops, "n": self.n, "matmuls_per_block": self.count, "seconds": self.seconds}


@dataclass
class BenchResult:
    """What :func:`bench` measured (``to_dict``/``to_json`` hold every number; rich prints a table)."""

    model: str
    input_size: tuple[int, int, int]
    num_classes: int
    device: str
    threads: int
    amp: str | None  # the autocast dtype, None for float32
    channels_last: bool
    data: str  # "synthetic" or the --data spec
    augment: str
    macs_per_image: int
    train: Timing
    inference: Timing
    pipeline: Timing
    peaks: dict[str, Peak]
    warmup: int
    repeats: int
    notes: list[str] = field(default_factory=list)

    @property
    def flops_forward(self) -> int:
        return 2 * self.macs_per_image

    @property
    def flops_train(self) -> int:
        return TRAIN_FLOPS_FACTOR * self.flops_forward

    @property
    def peak(self) -> Peak:
        """The peak the model's arithmetic runs at: the autocast dtype's when mixed precision is on."""
        return self.peaks[self.amp or "float32"]

    def gflops(self, which: str) -> float:
        """Achieved GFLOP/s of ``train`` or ``inference``: FLOPs per image x images/s."""
        flops = self.flops_train if which == "train" else self.flops_forward
        return flops * getattr(self, which).images_per_s / 1e9

    def pct_of_peak(self, which: str) -> float:
        return 100 * self.gflops(which) / self.peak.gflops

    @property
    def data_vs_train(self) -> float:
        """Data pipeline images/s over training images/s (> 1: the model is the slower part)."""
        return self.pipeline.images_per_s / self.train.images_per_s

    @property
    def epoch_images_per_s(self) -> float:
        """Estimate for an epoch from memory: the loader and the step run one after the other."""
        return 1 / (1 / self.train.images_per_s + 1 / self.pipeline.images_per_s)

    @property
    def verdict(self) -> str:
        r = self.data_vs_train
        if r >= 1.5:
            return f"data pipeline is {r:.1f}x faster than training: the model is the bottleneck"
        if r <= 1 / 1.5:
            return f"data pipeline is {1 / r:.1f}x slower than training: the data is the bottleneck"
        return f"data pipeline and training run at similar speeds ({r:.2f}x): both limit an epoch"

    def to_dict(self) -> dict[str, Any]:
        c, h, w = self.input_size
        return {
            "model": self.model, "input_size": [c, h, w], "num_classes": self.num_classes, "device": self.device,
            "threads": self.threads, "amp": self.amp, "channels_last": self.channels_last, "data": self.data,
            "augment": self.augment, "warmup": self.warmup, "repeats": self.repeats,
            "macs_per_image": self.macs_per_image, "flops_per_image_forward": self.flops_forward,
            "flops_per_image_train": self.flops_train, "flops_counted_by": "cnnkit.analyze.summary",
            "train": {**self.train.to_dict(), "gflops": self.gflops("train"), "pct_of_peak": self.pct_of_peak("train")},
            "inference": {**self.inference.to_dict(), "gflops": self.gflops("inference"),
                          "pct_of_peak": self.pct_of_peak("inference")},
            "data_pipeline": self.pipeline.to_dict(),
            "peak": {k: p.to_dict() for k, p in self.peaks.items()}, "peak_used": self.peak.dtype,
            "data_vs_train": self.data_vs_train, "epoch_images_per_s_estimate": self.epoch_images_per_s,
            "verdict": self.verdict, "notes": self.notes,
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def title(self) -> str:
        c, h, w = self.input_size
        prec = f"autocast {self.amp}" if self.amp else "float32"
        return (f"{self.model} on {self.device} ({self.threads} thread(s)), {c}x{h}x{w} input, {self.num_classes} "
                f"classes, {prec}{', channels_last' if self.channels_last else ''}; {self.macs_per_image / 1e6:,.2f} "
                f"M multiply-adds per image; median of {self.repeats} timings after {self.warmup} warmup step(s)")  # fmt: skip

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        t = Table(title=self.title(), title_justify="left", header_style="bold")
        for col in ("", "batch", "images/s", "spread", "ms/batch", "GFLOP/s", f"% of {self.peak.dtype} peak"):
            t.add_column(col, justify="left" if not col else "right")

        def timing_row(label: str, tm: Timing, which: str | None) -> None:
            g = [f"{self.gflops(which):,.2f}", f"{self.pct_of_peak(which):.1f}%"] if which else ["-", "-"]
            t.add_row(
                label,
                str(tm.batch),
                f"{tm.images_per_s:,.0f}",
                f"{tm.spread:.0%}",
                f"{tm.ms_per_batch:,.2f}",
                *g,
            )

        timing_row("training step", self.train, "train")
        timing_row("inference", self.inference, "inference")
        timing_row(f"data pipeline ({self.augment or 'no augmentation'})", self.pipeline, None)
        for p in self.peaks.values():
            t.add_row(f"matmul peak {p.dtype} ({p.n}x{p.n})", "-", "-", "-", "-", f"{p.gflops:,.1f}", "100%")
        lines = [f"epoch estimate (loader, then step): {self.epoch_images_per_s:,.0f} images/s", *self.notes,
                 f"verdict: {self.verdict}"]  # fmt: skip
        return Group(t, *lines)
