"""``report.html``: one self-contained page per evaluation, readable offline.

Everything is inside the file: figures as base64 ``data:`` URIs, CSS inline, no script, no link
to anything outside the page (it can be mailed, archived or opened years later as it is).
"""

from __future__ import annotations

import base64
import html
from datetime import datetime
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..run import LoadedRun, RunDir

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:26px;margin:8px 0 4px} h2{font-size:20px;margin:34px 0 10px;border-bottom:2px solid #dde1e6;padding-bottom:4px}
.sub{color:#56606b;margin:0 0 14px}
nav a{margin-right:12px;color:#2458a6;text-decoration:none;font-size:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin:14px 0}
.card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:21px;margin-top:2px} .card span{color:#56606b;font-size:12.5px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 10px}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:right} th{background:#eef1f4}
td.l,th.l{text-align:left} tr.worst td{background:#fdecee}
img{max-width:100%;height:auto;background:#fff;border:1px solid #dde1e6;border-radius:6px;display:block;margin:6px 0}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px;align-items:start}
.side{display:grid;grid-template-columns:auto 1fr;gap:18px;align-items:start}
.note{color:#56606b;font-size:13px;max-width:900px}
code{background:#eef1f4;padding:1px 4px;border-radius:3px}
"""


def data_uri(path: str | Path) -> str:
    """The PNG at ``path`` as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _e(v: Any) -> str:
    return html.escape(str(v))


def _fmt(v: Any, pct: bool = False, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{100 * v:.2f}%" if pct else f"{v:.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _e(v)


def _si(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def _table(header: list[str], rows: list[list[Any]], left: int = 1, row_class: list[str] | None = None) -> str:
    h = "".join(f'<th class="l">{_e(c)}</th>' if i < left else f"<th>{_e(c)}</th>" for i, c in enumerate(header))
    body = []
    for r_i, r in enumerate(rows):
        cls = f' class="{row_class[r_i]}"' if row_class and row_class[r_i] else ""
        tds = "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(r))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _as_yaml(v: Any) -> str:
    """A config value as config.yaml writes it (null, false, {a: 1}), not as Python prints it."""
    import yaml

    return yaml.safe_dump(v, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _figure(path: Path, alt: str) -> str:
    if not path.is_file():
        return f'<p class="note">({_e(path.name)} is missing)</p>'
    return f'<img src="{data_uri(path)}" alt="{_e(alt)}">'


def _model_section(run: LoadedRun, runs: list[LoadedRun]) -> str:
    from .complexity import counted_by, layer_table

    rows = layer_table(run.model, run.meta.input_size)
    total_p = sum(p.numel() for p in run.model.parameters())
    total_m = sum(r.macs for r in rows)
    table = _table(
        ["layer", "type", "output shape", "parameters", "MACs"],
        [[_e(r.name), _e(r.kind), _e(" x ".join(map(str, r.out_shape))), f"{r.params:,}", f"{r.macs:,}"] for r in rows]
        + [["<b>total</b>", "", "", f"<b>{total_p:,}</b>", f"<b>{total_m:,}</b>"]],
        left=3,
    )
    extra = ""
    if len(runs) > 1:
        extra = "<p class='note'>Ensemble members (probabilities averaged): " + ", ".join(
            f"<code>{_e(r.path.name)}</code> ({_e(r.meta.model)})" for r in runs) + ". The table shows the first.</p>"  # fmt: skip
    return (f"<p class='note'><code>{_e(run.meta.model)}</code> on input "
            f"{_e(' x '.join(map(str, run.meta.input_size)))}; parameters of each layer and multiply-accumulates "
            f"per image, measured by <code>{_e(counted_by())}</code>.</p>{extra}{table}")  # fmt: skip


def write_report(out: Path, run: LoadedRun, runs: list[LoadedRun], m: dict[str, Any]) -> Path:
    """Write ``out/report.html`` from the metrics and the figures already in ``out``."""
    from .._version import __version__

    rd = RunDir(run.path)
    summary = rd.read_summary()
    variant = []
    if m.get("tta"):
        variant.append(f"test-time augmentation <b>{_e(m['tta'])}</b> ({m['views']} views averaged)")
    if m.get("ensemble"):
        variant.append(f"ensemble of <b>{len(m['ensemble']) + 1}</b> runs")
    cards = [
        ("top-1 accuracy", _fmt(m["acc"], pct=True)), ("top-5 accuracy", _fmt(m["top5"], pct=True)),
        ("top-1 error", _fmt(m["error"], pct=True)), ("top-5 error", _fmt(m["top5_error"], pct=True)),
        ("log loss", _fmt(m["loss"])), ("mAP (one-vs-rest)", _fmt(m["map"])), ("ROC-AUC (macro)", _fmt(m["roc_auc"])),
        ("ECE (15 bins)", _fmt(m["ece"])), ("macro F1", _fmt(m["macro"]["f1"])),
        ("parameters", _si(m["params"])), ("MACs / image", _si(m["macs"])),
        ("accuracy / M params", _fmt(m["acc_per_mparam"], digits=3)), ("accuracy / GMAC", _fmt(m["acc_per_gmac"], digits=1)),
    ]  # fmt: skip
    cards_html = "".join(f"<div class='card'><span>{_e(a)}</span><b>{b}</b></div>" for a, b in cards)
    avg = _table(
        ["average", "precision", "recall", "specificity", "F1"],
        [[a, *(_fmt(m[a][k]) for k in ("precision", "recall", "specificity", "f1"))] for a in ("macro", "weighted")],
    )
    pc = m["per_class"]
    worst_f1 = sorted(range(len(pc)), key=lambda i: pc[i]["f1"])[: max(1, len(pc) // 10)]
    per_class = _table(
        ["class", "precision", "recall", "specificity", "F1", "support", "AP", "ROC-AUC", "TP", "FP", "FN", "TN"],
        [[_e(r["class"]), *(_fmt(r[k]) for k in ("precision", "recall", "specificity", "f1")), f"{r['support']:,}",
          _fmt(r["ap"]), _fmt(r["roc_auc"]), r["tp"], r["fp"], r["fn"], r["tn"]] for r in pc],
        row_class=["worst" if i in worst_f1 else "" for i in range(len(pc))],
    )  # fmt: skip
    confused = (_table(["true class", "predicted as", "images", "share of the true class"],
                       [[_e(r["true"]), _e(r["pred"]), r["count"], _fmt(r["rate"], pct=True)] for r in m["most_confused"]],
                       left=2) if m["most_confused"] else "<p class='note'>No image was misclassified.</p>")  # fmt: skip
    losses = _table(["image", "true", "predicted", "p(pred)", "p(true)", "loss"],
                    [[_e(r["id"]), _e(r["true"]), _e(r["pred"]), _fmt(r["p_pred"]), _fmt(r["p_true"]), _fmt(r["loss"])]
                     for r in m["top_losses"]], left=3,
                    row_class=["worst" if r["true"] != r["pred"] else "" for r in m["top_losses"]])  # fmt: skip
    cfg = _table(["key", "value"], [[_e(k), _e(_as_yaml(v))] for k, v in run.config.items()], left=2)
    aps = [r["ap"] for r in pc if r["ap"] == r["ap"]]  # classes with an AP (not NaN)
    pr_note = ("Every class has AP 1: for each one, a threshold separates all of its images from the rest, so "
               "every curve runs along the top edge to recall 1." if aps and min(aps) > 1 - 1e-9 else
               "When the classes differ only near the top-right corner, a close-up of that region (the dashed "
               "box) is drawn beside the full view.")  # fmt: skip
    k = m.get("mce_images")
    mce_note = f" (a bin of {k} image{'s' if k != 1 else ''})" if k else ""
    timing = summary.get("timing", {})
    train_rows = [["status", summary.get("status")], ["best epoch", summary.get("best_epoch")],
                  ["epochs run", summary.get("epochs_run")], ["training time (s)", timing.get("train_seconds")],
                  ["device", summary.get("device")], ["test accuracy at the end of training", _fmt((summary.get("test") or {}).get("acc"), pct=True)]]  # fmt: skip
    train_tbl = _table(["", "value"], [[_e(a), _e(b)] for a, b in train_rows if b is not None], left=2)
    curves = _figure(rd.curves, "training curves") if rd.curves.is_file() else "<p class='note'>The run has no curves.png.</p>"
    sections = [("summary", "Summary"), ("training", "Training"), ("per-class", "Per class"), ("confusion", "Confusion"),
                ("pr", "Precision-recall"), ("calibration", "Calibration"), ("losses", "Top losses"),
                ("model", "Model"), ("config", "Config")]  # fmt: skip
    nav = "".join(f"<a href='#{a}'>{_e(b)}</a>" for a, b in sections)
    title = f"{run.path.name}: evaluation on {m['dataset']} {m['split']}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="sub">model <code>{_e(m['model'])}</code> &middot; {m['n']:,} images &middot; {len(m['classes'])} classes
{' &middot; ' + ' &middot; '.join(variant) if variant else ''} &middot; cnnkit {_e(__version__)} &middot; {datetime.now():%Y-%m-%d %H:%M}</p>
<nav>{nav}</nav>
<h2 id="summary">Summary</h2>
<div class="cards">{cards_html}</div>
{avg}
<p class="note">Precision = TP/(TP+FP), recall = TP/(TP+FN), specificity = TN/(TN+FP), F1 = 2PR/(P+R), one class
against the rest. Macro averages weigh every class equally; weighted ones by support. Accuracy per million
parameters and per GMAC: the lectures' "accuracy per parameter" (cost counts every model and TTA view).</p>
<h2 id="training">Training curves</h2>
{curves}
<p class="note">Loss on a logarithmic axis (late epochs differ as much as early ones); the dashed green line marks
the best epoch, whose weights the run keeps; the lower panel is the learning rate each epoch started with.</p>
{train_tbl}
<h2 id="per-class">Per-class metrics</h2>
<p class="note">Rows shaded red: the lowest F1 scores.</p>
{per_class}
<h2 id="confusion">Confusion matrix</h2>
{_figure(out / 'confusion.png', 'confusion matrix')}
<h3>Most confused pairs</h3>
{confused}
<h2 id="pr">Precision-recall curves</h2>
{_figure(out / 'pr_curves.png', 'precision-recall curves')}
<p class="note">Each class against the rest, sweeping a threshold on its probability. AP is the area under the
step curve; mAP = {_fmt(m['map'])} is its mean over classes. ROC-AUC (macro, one-vs-rest) = {_fmt(m['roc_auc'])}.
{pr_note}</p>
<h2 id="calibration">Calibration</h2>
<div class="side">{_figure(out / 'reliability.png', 'reliability diagram')}
<p class="note">Images binned by confidence (their top probability). A calibrated model is right 80% of the time
when it says 80%: bars on the diagonal. Expected calibration error ECE = {_fmt(m['ece'])} (bin-size weighted mean
gap), worst bin MCE = {_fmt(m['mce'])}{mce_note}.</p></div>
<h2 id="losses">Top losses</h2>
<p class="note">The images with the highest loss &minus;log p(true class): the most confidently wrong first.</p>
{_figure(out / 'top_losses.png', 'top losses')}
{losses}
<div class="cols"><div><h2 id="model">Model summary</h2>
{_model_section(run, runs)}</div>
<div><h2 id="config">Config</h2>
{cfg}</div></div>
<p class="note">Files next to this report: metrics.json, per_class.csv, predictions.csv, confusion.csv and the figures.</p>
</main></body></html>
"""
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
