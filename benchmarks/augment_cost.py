"""What augmentation costs next to the training step it feeds (issue 13: fast augmentation).

For 32x32 batches of 128 (1 and 3 channels) it times ``cnnkit.data.loader.to_model_input`` (uint8 batch
-> augmented, normalised float batch: what every training batch goes through) for each augmentation
spec, and one LeNet-5 training step (forward, backward, SGD update) on the same batch, and prints the
milliseconds and the ratio. The goal: ``translate,rotate,scale,elastic`` under a quarter of the step.

Run ``python benchmarks/augment_cost.py`` (``--repeats`` for steadier numbers, ``--json``). To compare
with an older version, run the same script with ``PYTHONPATH=OLD_CHECKOUT/src``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from cnnkit.data.augment import Augment
from cnnkit.data.loader import to_model_input
from cnnkit.data.transforms import Normalize
from cnnkit.models import create_model

SPECS = ["none", "translate=2", "translate=2,flip", "rotate=10", "translate=2,rotate=10,scale=0.1",
         "elastic=1", "translate=2,rotate=10,scale=0.1,elastic=1", "jitter=0.2", "erase=0.25"]  # fmt: skip


def timed(fn, repeats: int, inner: int = 20) -> float:
    """Median milliseconds of one call of ``fn`` (``inner`` calls per sample, after a warm-up)."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) * 1000 / inner)
    return statistics.median(samples)


def lenet_step_ms(channels: int, batch: int, repeats: int) -> float:
    model = create_model("lenet5", num_classes=10, in_chans=channels, input_size=(32, 32))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, channels, 32, 32), torch.randint(0, 10, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return timed(step, repeats)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for channels in (1, 3):
        step = lenet_step_ms(channels, args.batch, args.repeats)
        x8 = torch.randint(0, 256, (args.batch, channels, 32, 32), dtype=torch.uint8)
        norm = Normalize([0.5] * channels, [0.25] * channels)
        for spec in SPECS:
            aug, gen = Augment.from_spec(spec), torch.Generator().manual_seed(0)
            ms = timed(
                lambda aug=aug, gen=gen, x8=x8, norm=norm: to_model_input(x8, aug, norm, gen), args.repeats
            )
            rows.append(
                {"channels": channels, "spec": spec, "ms": ms, "lenet_step_ms": step, "ratio": ms / step}
            )
    if args.json:
        print(json.dumps({"batch": args.batch, "threads": torch.get_num_threads(), "rows": rows}, indent=1))
        return 0
    print(f"batch {args.batch} of 32x32 images, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'ch':>2} {'augmentation':<44} {'ms/batch':>9} {'x LeNet-5 step':>15}")
    for r in rows:
        print(f"{r['channels']:>2} {r['spec']:<44} {r['ms']:>9.3f} {r['ratio']:>15.2f}")
    for ch in (1, 3):
        print(
            f"LeNet-5 training step, {ch} channel(s): {rows[[r['channels'] for r in rows].index(ch)]['lenet_step_ms']:.3f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
