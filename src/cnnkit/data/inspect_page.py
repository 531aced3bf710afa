"""The ``cnnkit inspect`` report as text (rich tables) and as a self-contained HTML page with thumbnails."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import torch

GENERATOR = "cnnkit inspect"  # in the page's <meta name="generator">: a page we made may be replaced
SHOW_GROUPS = 12  # duplicate groups shown in the text report (the page shows up to 60)


def print_report(r: dict[str, Any], console: Any | None = None) -> None:
    """The report as rich tables on the terminal."""
    from rich.console import Console
    from rich.table import Table

    # No markup: ids and class names are the user's text ("[draft] cat.png" must print as written).
    con = console or Console(markup=False, highlight=False)
    s = r["splits"]
    con.print(f"{r['dataset']}: {s['train']:,} train / {s['val']:,} val / {s['test']:,} test images "
              f"(split: {r['split']})")  # fmt: skip
    im = r["images"]
    sizes = ", ".join(f"{k} ({v:,})" for k, v in list(im["sizes"].items())[:5]) + (
        " ..." if len(im["sizes"]) > 5 else ""
    )
    modes = ", ".join(f"{k} ({v:,})" for k, v in im["modes"].items())
    con.print(f"stored sizes: {sizes}; modes: {modes}; loaded as {im['loaded_as']}"
              + (f"; {im['unreadable']} unreadable" if im["unreadable"] else ""))  # fmt: skip
    c = r["classes"]
    t = Table(
        title=f"images per class (imbalance {c['imbalance']:g}x)", title_justify="left", header_style="bold"
    )
    for col in ("class", "train", "val", "test", "total"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for i, name in enumerate(c["classes"]):
        t.add_row(name, *(f"{c['counts'][sp][i]:,}" for sp in ("train", "val", "test")), f"{c['total'][i]:,}")
    con.print(t)
    d = r["duplicates"]
    con.print(f"duplicates: {d['exact_groups']} exact and {d['near_groups']} near-duplicate groups; "
              f"{d['cross_split_groups']} cross splits ({d['leaked_eval_images']} val/test images also elsewhere), "
              f"{d['label_conflicts']} with different labels")  # fmt: skip
    if d["groups"]:
        t = Table(header_style="bold")
        for col in ("kind", "where", "images (split:id label)"):
            t.add_column(col, overflow="fold")
        for g in d["groups"][:SHOW_GROUPS]:
            where = ("across splits" if g["cross_split"] else "within " + g["images"][0]["split"]) + (
                ", labels differ" if g["label_conflict"] else "")  # fmt: skip
            t.add_row(g["kind"], where, "  ".join(f"{m['split']}:{m['id']} {m['label']}" for m in g["images"][:4])
                      + (f"  (+{len(g['images']) - 4})" if len(g["images"]) > 4 else ""))  # fmt: skip
        con.print(t)
        if len(d["groups"]) > SHOW_GROUPS:
            con.print(f"... {len(d['groups']) - SHOW_GROUPS} more groups (see --json or the HTML page)")
    li = r["label_issues"]
    if li.get("ranking"):
        con.print(f"labels: a {li['model']} ({li['folds']}-fold cross-validated, accuracy {li['oof_accuracy']:.1%} on "
                  f"{li['checked']:,} images) flags {li['flagged']} images as probably mislabelled; the least likely "
                  "labels:")  # fmt: skip
        t = Table(header_style="bold")
        for col in ("rank", "image", "split", "label", "p(label)", "model says", "flagged"):
            t.add_column(col, justify="right" if col in ("rank", "p(label)") else "left", overflow="fold")
        for k, x in enumerate(li["ranking"][:10], 1):
            t.add_row(str(k), x["id"], x["split"], x["given"], f"{x['p_given']:.3f}",
                      f"{x['suggested']} ({x['p_suggested']:.2f})", "yes" if x["flagged"] else "")  # fmt: skip
        con.print(t)
        if not li.get("reliable", True):
            con.print(f"note: {li['note']}")
    else:
        con.print(f"labels: not checked ({li.get('note', 'no images')})")
    a = r["auto"]
    con.print(f"auto would choose: input size {a['input_size']} px, --augment {a['augment']}")
    con.print(f"  ({a['augment_reason']})")


def _png(img: torch.Tensor, height: int = 64) -> str:
    """A uint8 ``C x H x W`` image as an inline PNG data URI, scaled up (nearest) to about ``height`` px."""
    from PIL import Image

    a = img.numpy().transpose(1, 2, 0)
    pil = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a[..., :3])
    h, w = a.shape[:2]
    f = max(1, height // max(h, 1))
    if f > 1:
        pil = pil.resize((w * f, h * f), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _figure(images: torch.Tensor, i: int, lines: list[str], cls: str = "") -> str:
    caption = "<br>".join(_e(x) for x in lines)
    return (f'<figure class="{cls}"><img src="{_png(images[i])}" title="{_e(lines[0])}">'
            f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 10px;border-bottom:1px solid #e4e4e4;text-align:right}
td:first-child,th:first-child{text-align:left}.bar{background:#4a7fd4;height:10px;display:inline-block}
figure{display:inline-block;margin:4px;text-align:center;font-size:11px;vertical-align:top;max-width:120px;
word-break:break-all}
figure img{image-rendering:pixelated;height:64px;border:1px solid #bbb}
.group{display:inline-block;vertical-align:top;border:1px solid #ddd;border-radius:6px;padding:4px;margin:4px}.leak{border-color:#d9534f;background:#fff5f5}
.flag img{border:2px solid #d9534f}.note{color:#666;font-size:13px}code{background:#f3f3f3;padding:1px 4px}
"""


def render_html(r: dict[str, Any]) -> str:
    """The report as one HTML page; thumbnails are inline PNGs, so the file can be moved or mailed."""
    images = r["_images"]
    s, c, im, d, li, a = r["splits"], r["classes"], r["images"], r["duplicates"], r["label_issues"], r["auto"]
    out = [f'<!doctype html><html><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR}">'
           f"<title>inspect {_e(r['dataset'])}</title><style>{CSS}</style></head><body>",
           f"<h1>cnnkit inspect: {_e(r['dataset'])}</h1>",
           f"<p>{s['train']:,} train / {s['val']:,} val / {s['test']:,} test images (split: {_e(r['split'])}). "
           f"Stored sizes: {_e(', '.join(f'{k} ({v:,})' for k, v in im['sizes'].items()))}; modes: "
           f"{_e(', '.join(f'{k} ({v:,})' for k, v in im['modes'].items()))}; loaded as {_e(im['loaded_as'])}.</p>"]  # fmt: skip
    top = max(c["total"]) or 1
    out.append(f"<h2>Classes (imbalance {c['imbalance']:g}x)</h2><table><tr><th>class</th><th>train</th><th>val</th>"
               "<th>test</th><th>total</th><th></th></tr>")  # fmt: skip
    for i, name in enumerate(c["classes"]):
        cells = "".join(f"<td>{c['counts'][sp][i]:,}</td>" for sp in ("train", "val", "test"))
        bar = f'<span class="bar" style="width:{200 * c["total"][i] / top:.0f}px"></span>'
        out.append(f"<tr><td>{_e(name)}</td>{cells}<td>{c['total'][i]:,}</td><td>{bar}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Duplicates</h2><p>{d['exact_groups']} groups of exact duplicates, {d['near_groups']} of near "
               f"duplicates; <b>{d['cross_split_groups']} span splits</b> ({d['leaked_eval_images']} validation/test "
               f"images also appear elsewhere: their score measures memory), {d['label_conflicts']} carry different "
               "labels. Red: across splits.</p>")  # fmt: skip
    for g in d["groups"][:60]:
        figs = "".join(
            _figure(images, m["index"], [f"{m['split']}: {m['label']}", m["id"]]) for m in g["images"][:8]
        )
        what = (
            g["kind"]
            + (", across splits" if g["cross_split"] else "")
            + (", labels differ" if g["label_conflict"] else "")
        )
        out.append(
            f'<div class="group{" leak" if g["cross_split"] else ""}"><div class="note">{_e(what)}</div>{figs}</div>'
        )
    if len(d["groups"]) > 60:
        out.append(
            f'<p class="note">... and {len(d["groups"]) - 60} more groups (cnnkit inspect --json lists all).</p>'
        )
    out.append("<h2>Probably mislabelled</h2>")
    if li.get("ranking"):
        out.append(f"<p>Out-of-fold probabilities of a {_e(li['model'])} ({li['folds']}-fold, accuracy "
                   f"{li['oof_accuracy']:.1%} on {li['checked']:,} images). Lowest probability of the given label first; "
                   f"red frame: flagged by confident learning ({li['flagged']} images).</p>")  # fmt: skip
        if not li.get("reliable", True):
            out.append(f'<p class="note"><b>Note</b>: {_e(li["note"])}.</p>')
        for k, x in enumerate(li["ranking"], 1):
            lines = [
                f"#{k} labelled {x['given']}",
                f"model: {x['suggested']} ({x['p_suggested']:.2f})",
                x["id"],
            ]
            out.append(_figure(images, x["index"], lines, "flag" if x["flagged"] else ""))
    else:
        out.append(f"<p>Not checked: {_e(li.get('note', 'no images'))}.</p>")
    out.append(f"<h2>What auto would choose</h2><p>Input size {a['input_size']} px; <code>--augment "
               f"{_e(a['augment'])}</code>: {_e(a['augment_reason'])}.</p></body></html>")  # fmt: skip
    return "\n".join(out)


def made_by_us(path: Path) -> bool:
    """Whether ``path`` is a page this command wrote (so replacing it loses nothing of the user's)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(400)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def check_page_target(path: str | Path, overwrite: bool = False, inputs: tuple[str, ...] = ()) -> Path:
    """Before any work: ``path`` can be written, and is not a file of the user's (unless ``overwrite``)."""
    from ..errors import ConfigError
    from ..io import check_output_file

    p = check_output_file(path, "-o/--output", inputs=inputs)
    if p.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"-o/--output {str(path)!r} is not an HTML file name", hint="end it in .html")
    if p.exists() and not overwrite and not made_by_us(p):
        raise ConfigError(f"-o/--output {str(path)!r} exists and is not a page cnnkit inspect wrote",
                          hint="choose another file name, or pass --overwrite to replace it")  # fmt: skip
    return p


def write_html(r: dict[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """Write the page atomically (readers see the old page or the new one, never half of one)."""
    from ..io import atomic_write_text

    p = check_page_target(path, overwrite)
    atomic_write_text(p, render_html(r))
    return p
