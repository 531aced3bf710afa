"""airbench94's recipe on CIFAR-10 through cnnkit: training time to 94% test accuracy (issue 13, item 9).

Runs ``cnnkit.train(model="airbench94", data="cifar10")``: the model's own recipe (batch 1024, 10 epochs,
Nesterov SGD, warmup then linear decay, label smoothing 0.2, flip+shift test-time augmentation), cnnkit's
``auto`` machine settings (on CUDA: bf16 autocast, channels-last, torch.compile), airbench's augmentation
``translate=2,flip`` (``--augment auto`` would pick 4 px shifts, flips and colour jitter for these photos)
and, as airbench, all 50,000 training images (``--val-split 0``: the epoch with the lowest training loss,
in practice the last, is tested).

Training time is the sum of the epoch rows' seconds; the plain test accuracy after every epoch is measured
off the clock. A first, untimed one-epoch run compiles the network (airbench warms up the same way), so
the timed run does not count the compilation; ``--no-warmup`` counts it.

CIFAR-10 cannot be downloaded on the machines this runs on: ``--data-root DIR`` must hold
``cifar-10-batches-py/`` (the python version of the dataset, unpacked). ``--tiny`` instead trains a narrow
airbench94 on generated 32x32 colour images on the CPU in seconds (a smoke test, not a measurement).

    python benchmarks/gpu_cifar.py --data-root /data            # on a machine with a GPU
    python benchmarks/gpu_cifar.py --tiny                       # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # this folder's helpers, also when imported by path
from epoch_curve import TestEveryEpoch, first_at  # noqa: E402

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
AIRBENCH_AUGMENT = "translate=2,flip"


def write_tiny_folder(root: Path, per_class: int = 48, seed: int = 0) -> Path:
    """Generated 32x32 colour images in ``root/<class>/``: four classes of noisy gratings, one orientation each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    for k in range(4):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        angle = k * np.pi / 4
        for i in range(per_class):
            wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 0.6 + rng.uniform(0, 2 * np.pi))
            tint = rng.uniform(0.3, 1.0, size=3)
            img = 127 + 80 * wave[..., None] * tint + rng.normal(0, 25, size=(32, 32, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"class{k}" / f"{i:03d}.png")
    return root


def device_info(device: str) -> str:
    """One line naming the machine the numbers come from."""
    if device != "cpu" and torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        return (f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, torch {torch.__version__}, "
                f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")  # fmt: skip
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def train_once(options: dict[str, Any], runs: Path, name: str) -> dict[str, Any]:
    """One run of the recipe; the plain test accuracy after each epoch (off the clock) and the final scores."""
    import cnnkit

    tracker = TestEveryEpoch()
    res = cnnkit.train(model="airbench94", runs_dir=str(runs), name=name, callbacks=[tracker], quiet=True,
                       **options)  # fmt: skip
    test = res.summary["test"]
    curve = tracker.curve
    return {"curve": curve, "train_s": curve[-1][0] if curve else 0.0, "test_acc": test["acc"],
            "tta": test.get("tta"), "device": res.summary["device"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="cifar10", choices=("cifar10",), help="the dataset (CIFAR-10)")
    ap.add_argument(
        "--data-root", type=Path, help="folder holding cifar-10-batches-py/ (default: cnnkit's data root)"
    )
    ap.add_argument(
        "--tiny", action="store_true", help="smoke test: generated images, narrow net, CPU, seconds"
    )
    ap.add_argument("--runs", type=int, default=1, help="timed runs (seeds 0..N-1); airbench averages many")
    ap.add_argument("--target", type=float, default=0.94, help="test accuracy to time (default 0.94)")
    ap.add_argument(
        "--device", default="auto", help="cnnkit's --device (default auto: the GPU if there is one)"
    )
    ap.add_argument("--no-warmup", action="store_true", help="time the first run too (compilation included)")
    ap.add_argument(
        "--options", default="{}", help="JSON of cnnkit.train options to change (e.g. '{\"epochs\": 8}')"
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    if args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2
    options: dict[str, Any] = {"augment": AIRBENCH_AUGMENT, "val_split": 0.0, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            folder = write_tiny_folder(Path(tmp) / "tiny")
            options.update(data=f"folder:{folder}", device="cpu", epochs=2, batch_size=64, val_split=0.15,
                           test_split=0.25, cache=False, model_args={"widths": [16, 32, 32]})  # fmt: skip
        else:
            from cnnkit.data.registry import default_data_root

            root = args.data_root or default_data_root()
            missing = [f for f in CIFAR_FILES if not (Path(root) / "cifar-10-batches-py" / f).is_file()]
            if missing:
                print(f"error: CIFAR-10 is not in {root}/cifar-10-batches-py (missing {', '.join(missing)}); nothing can "
                      "be downloaded here: copy the unpacked cifar-10-python.tar.gz there, or pass --data-root DIR "
                      "(--tiny runs a smoke test on generated images)", file=sys.stderr)  # fmt: skip
                return 2
            options.update(data="cifar10", data_root=str(root))
        options.update(json.loads(args.options))
        runs_dir = Path(tmp) / "runs"
        if not args.tiny and not args.no_warmup:  # compile (and load the data) once, untimed
            print("warm-up run (1 epoch, untimed) ...", file=sys.stderr, flush=True)
            train_once({**options, "epochs": 1}, runs_dir, "warmup")
        results = []
        for seed in range(args.runs):
            print(f"timed run {seed + 1}/{args.runs} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            r = train_once({**options, "seed": seed}, runs_dir, f"run{seed}")
            r["wall_s"] = time.perf_counter() - t0
            r["to_target_s"] = first_at(r["curve"], args.target)[1]
            results.append(r)
    info = device_info(results[0]["device"])
    final = [r["tta"]["acc"] if r["tta"] else r["test_acc"] for r in results]
    summary = {"device": info, "target": args.target, "runs": results, "final_acc_mean": float(np.mean(final)),
               "train_s_mean": float(np.mean([r["train_s"] for r in results])), "tiny": args.tiny}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"device: {info}")
    print(f"{'run':>4} {'epochs':>6} {'train s':>8} {'to ' + format(args.target, '.0%') + ' (plain)':>16} "
          f"{'final plain':>12} {'final TTA':>10}")  # fmt: skip
    for i, r in enumerate(results):
        to = "never" if r["to_target_s"] is None else f"{r['to_target_s']:.2f} s"
        tta = f"{r['tta']['acc']:.2%}" if r["tta"] else "-"
        print(f"{i:>4} {len(r['curve']):>6} {r['train_s']:>8.2f} {to:>16} {r['test_acc']:>12.2%} {tta:>10}")
    reached = sum(a >= args.target for a in final)
    print(f"mean final accuracy (TTA where set) {summary['final_acc_mean']:.2%} in {summary['train_s_mean']:.2f} s "
          f"of training; {reached}/{len(final)} runs reach {args.target:.0%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
