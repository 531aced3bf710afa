"""``cnnkit eval RUN_DIR``: metrics, figures and an HTML report of a saved run on its recorded split."""

from __future__ import annotations

import argparse
import json

from ..config import TTA_MODES
from ._args import add_command, add_device, add_json, add_run


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "eval", run, "evaluate a saved run on its test split (metrics, figures, report.html)",
                    "Evaluate a run's best weights: top-1/top-5, per-class precision/recall/specificity/F1, "
                    "confusion matrix, PR curves and mAP, ROC-AUC, log loss, calibration, top losses, accuracy "
                    "per parameter and per MAC. Written to RUN_DIR/eval/<split>[-variant]/ with report.html.")  # fmt: skip
    add_run(p)
    p.add_argument("--split", choices=("test", "val", "train"), default="test")
    p.add_argument("--data", help="evaluate on another dataset with the same classes")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation: average over mirror images (flip), "
                   "mirror images shifted by one pixel (flip+shift, 6 views: what `train --tta` scores) or "
                   "AlexNet's ten crops (crops)")  # fmt: skip
    p.add_argument("--ensemble", nargs="+", metavar="RUN_DIR", default=[],
                   help="more runs whose probabilities are averaged with RUN_DIR's (same classes)")  # fmt: skip
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    add_device(p)
    add_json(p, "print the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate_run

    m = evaluate_run(args.run_dir, split=args.split, data=args.data, device=args.device, tta=args.tta,
                     ensemble=args.ensemble, report=not args.no_report)  # fmt: skip
    if args.json:
        print(json.dumps(m, indent=2))
        return 0

    def f(v: float | None, pct: bool = False) -> str:
        return "n/a" if v is None else f"{v:.2%}" if pct else f"{v:.4f}"

    what = args.split + (f", TTA {args.tta} ({m['views']} views)" if args.tta else "")
    what += f", ensemble of {len(args.ensemble) + 1} runs" if args.ensemble else ""
    # Top-5 of five classes or fewer is 100% by construction: only shown where it measures something.
    top5 = f"top-5 {f(m['top5'], True)}  " if len(m.get("classes") or ()) > 5 else ""
    print(f"{what}: {m['n']} images  accuracy {f(m['acc'], True)}  {top5}"
          f"error {f(m['error'], True)}  loss {f(m['loss'])}")  # fmt: skip
    print(f"macro precision {f(m['macro']['precision'])}  recall {f(m['macro']['recall'])}  "
          f"specificity {f(m['macro']['specificity'])}  F1 {f(m['macro']['f1'])}")  # fmt: skip
    print(f"mAP {f(m['map'])}  ROC-AUC {f(m['roc_auc'])}  ECE {f(m['ece'])}")
    print(f"{m['params']:,} parameters, {m['macs']:,} MACs per image: accuracy {m['acc_per_mparam'] or 0:.3f} "
          f"per million parameters, {m['acc_per_gmac'] or 0:.1f} per GMAC")  # fmt: skip
    if m["most_confused"]:
        print("most confused: " + ", ".join(f"{r['true']}->{r['pred']} ({r['count']})" for r in m["most_confused"][:5]))
    print(f"written to {m['out_dir']}/" + ("" if args.no_report else "  (open report.html)"))
    return 0
