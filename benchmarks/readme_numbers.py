"""Regenerate the numbers the README quotes about the default run (LeNet-5 on digits, seed 0).

    python benchmarks/readme_numbers.py [--epochs 30] [--seed 0] [--out /tmp/readme-numbers]
    python benchmarks/readme_numbers.py --run /tmp/readme-numbers/lenet5-seed0   # attacks only, same run

Trains ``cnnkit train``'s default run (every default, as the README's first command), evaluates it as
``cnnkit eval`` does, and attacks it as ``cnnkit fool`` does: FGSM at eps 0.1 on every test image,
and targeted PGD (eps 0.1, 40 steps, the ``cnnkit fool --method pgd --eps 0.1 --target 8`` command)
towards class 8 on every test image that is not an 8. Prints the README's sentences with the
measured numbers, and writes them as JSON beside the run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30, help="training epochs (default 30, cnnkit train's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--target", type=int, default=8, help="the PGD target class (default 8)")
    ap.add_argument("--out", default=None, help="folder for the run (default: a temporary folder)")
    ap.add_argument("--run", default=None, help="measure this finished run instead of training one")
    args = ap.parse_args()

    import cnnkit
    from cnnkit.evaluate import run_data
    from cnnkit.explain._common import from_run
    from cnnkit.explain.adversarial import fgsm, pgd
    from cnnkit.run import load_run

    t0 = time.perf_counter()
    if args.run:
        run_dir = Path(args.run)
        summary = json.loads((run_dir / "summary.json").read_text())
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="readme-numbers-"))
        result = cnnkit.train(name=f"lenet5-seed{args.seed}", runs_dir=str(out), epochs=args.epochs, seed=args.seed,
                              quiet=True, overwrite=True)  # fmt: skip
        run_dir, summary = result.run_dir, result.summary
    wall = time.perf_counter() - t0
    m = cnnkit.evaluate(run_dir, write=False)
    metric = m.to_dict() if hasattr(m, "to_dict") else dict(m)

    run = load_run(run_dir, device=torch.device("cpu"))
    test = run_data(run).test
    x, y = test.images, test.labels
    model = from_run(run)  # takes [0, 1] pixels: eps is in grey levels / 255, as `cnnkit fool` uses it
    with torch.no_grad():
        clean = (model(x.float() / 255).argmax(1) == y).float().mean().item()
    adv = fgsm(model, x, y=y, eps=args.eps)
    with torch.no_grad():
        fgsm_acc = (model(adv).argmax(1) == y).float().mean().item()
    keep = y != args.target
    adv = pgd(model, x[keep], target=args.target, eps=args.eps, steps=40)
    with torch.no_grad():
        hit = (model(adv).argmax(1) == args.target).float().mean().item()

    numbers = {
        "epochs": summary["epochs_run"],
        "seed": yaml.safe_load((run_dir / "config.yaml").read_text())["seed"],
        "test_accuracy": summary["test"]["acc"],
        "train_seconds": summary["timing"]["train_seconds"],
        "wall_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "map": metric.get("map"),
        "ece": metric.get("ece"),
        "params": metric.get("params"),
        "macs": metric.get("macs"),
        "clean_accuracy": clean,
        "fgsm_eps": args.eps,
        "fgsm_accuracy": fgsm_acc,
        "pgd_target": args.target,
        "pgd_images": int(keep.sum()),
        "pgd_success": hit,
    }
    (run_dir / "readme_numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))
    print()
    print(f"- `cnnkit train`: {numbers['test_accuracy']:.2%} test accuracy with seed {numbers['seed']}, "
          f"{numbers['train_seconds']:.0f} s of training on {numbers['threads']} CPU threads")  # fmt: skip
    print(f"- report: {numbers['test_accuracy']:.2%} top-1, mAP {numbers['map']:.4f}, ECE {numbers['ece']:.3f}, "
          f"{numbers['params']:,} parameters, {numbers['macs']:,} MACs")  # fmt: skip
    print(f"- FGSM at eps = {args.eps:g} takes LeNet-5 from {clean:.1%} to {fgsm_acc:.1%}; targeted PGD "
          f"(eps {args.eps:g}, 40 steps) turns {hit:.1%} of the {int(keep.sum())} test images that are not "
          f"a {args.target} into a {args.target}")  # fmt: skip


if __name__ == "__main__":
    main()
