"""``cnnkit compare``: several runs side by side, and accuracy against cost.

The lectures close the evaluation chapter with Canziani et al. (2016): top-1 accuracy against
operations per image, marker size = parameters, because a model is only "better" at a price. This
module builds that table and chart from run folders: accuracy and top-5 from ``eval/<split>/``
when the run was evaluated (else from ``summary.json``), parameters and MACs from the evaluation or
counted on the model, training time from ``summary.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..io import atomic_write_text, check_output_dir, check_output_file
from ..run import RunDir, read_json

COLUMNS = ["name", "model", "dataset", "params", "macs", "acc", "top5", "loss", "n", "train_seconds",
           "acc_per_mparam", "acc_per_gmac", "source", "run"]  # fmt: skip


OUTPUT_FILES = ("compare.csv", "acc_vs_macs.png", "acc_vs_params.png")


def _field(d: dict[str, Any], key: str, where: Path, hint: str, lo: float = 0.0, hi: float = math.inf,
           whole: bool = False, within: str = "") -> Any:  # fmt: skip
    """``d[key]`` if it is absent/null or a number in ``[lo, hi]`` (a whole one with ``whole``), else an error.

    summary.json and eval metrics are files a user can edit or damage; a string where a number
    belongs would otherwise surface as a formatting error while the table is printed.
    """
    v = d.get(key)
    if v is None:
        return None
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and (not whole or float(v).is_integer())
    if not ok or not (lo <= v <= hi):  # NaN fails both comparisons
        kind = "a whole number" if whole else "a number"
        raise CheckpointError(f"{str(where)!r} is damaged: {within + key!r} must be {kind} in [{lo:g}, {hi:g}], "
                              f"not {v!r}"[:300], hint=hint)  # fmt: skip
    return int(v) if whole else float(v)


def _mapping(d: dict[str, Any], key: str, where: Path, hint: str) -> dict[str, Any]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise CheckpointError(f"{str(where)!r} is damaged: {key!r} must be a JSON object, not {v!r}"[:300], hint=hint)
    return v


def _text(d: dict[str, Any], key: str, where: Path, hint: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise CheckpointError(f"{str(where)!r} is damaged: {key!r} must be a string, not {v!r}"[:300], hint=hint)
    return v


def _results(d: dict[str, Any], where: Path, hint: str, within: str = "") -> dict[str, Any]:
    """acc, top5 (fractions) and loss of one evaluation, checked (``within``: the enclosing key, e.g. ``test.``)."""
    return {k: _field(d, k, where, hint, hi=1.0 if k != "loss" else math.inf, within=within)
            for k in ("acc", "top5", "loss")}  # fmt: skip


def run_row(run_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """One run's line of the comparison."""
    from .complexity import model_cost, per_unit

    rd = RunDir(run_dir)
    rd.check_exists()
    summary = rd.read_summary()
    cfg = rd.read_config()
    ev_file = rd.path / "eval" / split / "metrics.json"
    ev = read_json(ev_file, "evaluation") if ev_file.is_file() else {}
    if not isinstance(ev, dict):
        raise CheckpointError(f"evaluation {str(ev_file)!r} is damaged (not a JSON object)",
                              hint=f"run `cnnkit eval {rd.path}` again")  # fmt: skip
    s_hint = "restore it from a copy; `cnnkit train` writes it at the end of a run"
    e_hint = f"delete it or run `cnnkit eval {rd.path}` again"
    timing = _mapping(summary, "timing", rd.summary, s_hint)
    row: dict[str, Any] = {
        "name": rd.path.name,
        "model": _text(summary, "model", rd.summary, s_hint) or str(cfg.get("model", "?")),
        "dataset": _text(summary, "dataset", rd.summary, s_hint) or str(cfg.get("data", "?")),
        "train_seconds": _field(timing, "train_seconds", rd.summary, s_hint, within="timing."),
        "run": str(rd.path),
    }
    if ev:
        row.update(**_results(ev, ev_file, e_hint), n=_field(ev, "n", ev_file, e_hint, whole=True),
                   params=_field(ev, "params", ev_file, e_hint, whole=True),
                   macs=_field(ev, "macs", ev_file, e_hint, whole=True), source=f"eval/{split}/metrics.json")  # fmt: skip
    else:
        res = _mapping(summary, split, rd.summary, s_hint)
        row.update(**_results(res, rd.summary, s_hint, within=f"{split}."), source="summary.json",
                   n=_field(res, "n", rd.summary, s_hint, whole=True, within=f"{split}."))
    if not row.get("macs") or row.get("params") is None:
        # Not evaluated yet: count MACs on the model itself (cheap, one dummy forward pass).
        from ..run import load_run

        r = load_run(rd.path)
        row.update(model_cost(r.model, r.meta.input_size))
    row["num_classes"] = _num_classes(rd)
    if row["num_classes"] is not None and row["num_classes"] <= 5:
        row["top5"] = None  # top-5 of five classes or fewer is 100% by construction: not a measurement
    acc = row.get("acc")
    row["acc_per_mparam"] = per_unit(acc, row["params"], 1e6) if acc is not None else None
    row["acc_per_gmac"] = per_unit(acc, row["macs"], 1e9) if acc is not None else None
    return row


def _num_classes(rd: RunDir) -> int | None:
    """The run's class count from its weights' sidecar (None when it cannot be read: the row stays)."""
    for which in ("best", "last"):
        p = rd.weights(which).with_suffix(".json")
        if p.is_file():
            try:
                n = read_json(p, "weights sidecar").get("num_classes")
            except (CheckpointError, AttributeError):
                return None
            return n if isinstance(n, int) and not isinstance(n, bool) else None
    return None


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path = "compare", split: str = "test") -> list[dict[str, Any]]:
    """Write ``compare.csv``, ``acc_vs_macs.png`` and ``acc_vs_params.png`` to ``out_dir``; return the rows."""
    import csv
    import io

    from .plots import plot_accuracy_vs

    if not run_dirs:
        raise ConfigError("compare needs at least one run folder", hint="cnnkit compare runs/a runs/b runs/c")
    seen: set[Path] = set()
    for r in run_dirs:  # the same run twice would be two identical rows and two points on one spot
        if Path(r).resolve() in seen:
            raise ConfigError(f"run {str(r)!r} is given twice", hint="list each run once")
        seen.add(Path(r).resolve())
    out = Path(out_dir)
    if str(out_dir).strip() == "":
        raise ConfigError("-o/--out is empty", hint="give a folder, e.g. -o compare")
    # Before reading any run: a comparison that cannot be saved should fail at once.
    check_output_dir(out, "-o/--out")
    for f in OUTPUT_FILES:
        if (out / f).is_dir():
            raise ConfigError(f"cannot write {str(out / f)!r}: a folder of that name is in the way",
                              hint="move it away, or give another -o/--out folder")  # fmt: skip
        check_output_file(out / f, "-o/--out")
    rows = [run_row(r, split) for r in run_dirs]
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "compare.csv", buf.getvalue())
    plot_rows = [{**r, "acc": float("nan") if r["acc"] is None else r["acc"]} for r in rows]
    sets = sorted({r["dataset"] for r in rows})
    on = f" on {', '.join(sets)} ({split})" + _images_note(rows, split)
    plot_accuracy_vs(plot_rows, "macs", out / "acc_vs_macs.png", "multiply-accumulates per image (MACs)",
                     "Top-1 accuracy against compute" + on)  # fmt: skip
    plot_accuracy_vs(plot_rows, "params", out / "acc_vs_params.png", "parameters",
                     "Top-1 accuracy against parameters" + on)  # fmt: skip
    return rows


def _images_note(rows: list[dict[str, Any]], split: str) -> str:
    """A subtitle with the evaluation's size: on 270 images one image is 0.37 points, not noise-free."""
    ns = sorted({r["n"] for r in rows if r.get("n")})
    if not ns:
        return ""
    if len(ns) == 1:
        return f"\n{ns[0]:,} {split} images: one image = {100 / ns[0]:.2g} accuracy points"
    return f"\n{' / '.join(f'{n:,}' for n in ns)} {split} images: one image = {100 / ns[-1]:.2g} to {100 / ns[0]:.2g} points"
