"""``cnnkit eval RUN_DIR``: metrics of a saved run on its recorded split."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a saved run on its test split")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--data", help="evaluate on another dataset with the same classes")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_run

    m = evaluate_run(args.run_dir, split=args.split, data=args.data, device=args.device)
    if args.json:
        print(json.dumps(m, indent=2))
    else:
        print(f"{args.split}: {m['n']} images  accuracy {m['acc']:.2%}  top-5 {m['top5']:.2%}  "
              f"error {m['error']:.2%}  loss {m['loss']:.4f}")  # fmt: skip
        print(f"written to {args.run_dir}/eval/{args.split}/metrics.json")
    return 0
