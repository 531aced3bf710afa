"""``cnnkit compare``: several runs side by side, and accuracy against cost.

The lectures close the evaluation chapter with Canziani et al. (2016): top-1 accuracy against
operations per image, marker size = parameters, because a model is only "better" at a price. This
module builds that table and chart from run folders: accuracy and top-5 from ``eval/<split>/``
when the run was evaluated (else from ``summary.json``), parameters and MACs from the evaluation or
counted on the model, training time from ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..io import atomic_write_text
from ..run import RunDir

COLUMNS = ["name", "model", "dataset", "params", "macs", "acc", "top5", "loss", "train_seconds", "acc_per_mparam",
           "acc_per_gmac", "source", "run"]  # fmt: skip


def run_row(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """One run's line of the comparison."""
    from .complexity import model_cost, per_unit

    rd = RunDir(run_dir)
    rd.check_exists()
    summary = rd.read_summary()
    cfg = rd.read_config()
    ev_file = rd.path / "eval" / split / "metrics.json"
    ev = json.loads(ev_file.read_text()) if ev_file.is_file() else {}
    row: dict[str, Any] = {
        "name": rd.path.name,
        "model": summary.get("model") or cfg.get("model", "?"),
        "dataset": summary.get("dataset") or cfg.get("data", "?"),
        "train_seconds": (summary.get("timing") or {}).get("train_seconds"),
        "run": str(rd.path),
    }
    if ev:
        row.update(acc=ev.get("acc"), top5=ev.get("top5"), loss=ev.get("loss"), params=ev.get("params"),
                   macs=ev.get("macs"), source=f"eval/{split}/metrics.json")  # fmt: skip
    else:
        res = summary.get(split) or {}
        row.update(acc=res.get("acc"), top5=res.get("top5"), loss=res.get("loss"), source="summary.json")
    if not row.get("macs"):
        # Not evaluated yet: count MACs on the model itself (cheap, one dummy forward pass).
        from ..run import load_run

        r = load_run(rd.path)
        row.update(model_cost(r.model, r.meta.input_size))
    acc = row.get("acc")
    row["acc_per_mparam"] = per_unit(acc, row["params"], 1e6) if acc is not None else None
    row["acc_per_gmac"] = per_unit(acc, row["macs"], 1e9) if acc is not None else None
    return row


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path = "compare", split: str = "test") -> list[dict[str, Any]]:
    """Write ``compare.csv``, ``acc_vs_macs.png`` and ``acc_vs_params.png`` to ``out_dir``; return the rows."""
    import csv
    import io

    from .plots import plot_accuracy_vs

    if not run_dirs:
        raise ConfigError("compare needs at least one run folder", hint="cnnkit compare runs/a runs/b runs/c")
    rows = [run_row(r, split) for r in run_dirs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "compare.csv", buf.getvalue())
    plot_rows = [{**r, "acc": float("nan") if r["acc"] is None else r["acc"]} for r in rows]
    sets = sorted({r["dataset"] for r in rows})
    on = f" on {', '.join(sets)} ({split})"
    plot_accuracy_vs(plot_rows, "macs", out / "acc_vs_macs.png", "multiply-accumulates per image (MACs)",
                     "Top-1 accuracy against compute" + on + "\nmarker size grows with parameters")  # fmt: skip
    plot_accuracy_vs(plot_rows, "params", out / "acc_vs_params.png", "parameters",
                     "Top-1 accuracy against parameters" + on)  # fmt: skip
    return rows
