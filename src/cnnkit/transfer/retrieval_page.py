"""The retrieval PNG and HTML page: failures first, every thumbnail labelled, every number explained.

A query *fails* when some of its k neighbours have another class. The page shows the failing queries
first (fewest correct neighbours first), then a few successes for contrast, so the first screen is the
part worth looking at; on a 98% model the old order showed eight perfect rows and nothing to learn.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

THUMB_PX = 96  # CSS pixels per thumbnail: 3x a 32 px digit, and eleven of them fit a 1280 px window
OK_MARK, BAD_MARK = "\u2713", "\u2717"  # check and cross: correctness must not rest on colour alone


def display_order(n: int, precision: np.ndarray | None, ap: np.ndarray | None, show: int) -> list[int]:
    """Indices of the (at most ``show``) queries to draw, of ``n``: failures first, the lowest precision@k
    (then AP@k) first, then successes.

    With both kinds present, a quarter of the rows (at least one, from two rows on) go to successes, so
    the page shows what a good answer looks like next to the bad ones. Unlabelled queries keep their order.
    """
    show = max(1, min(show, n))
    if precision is None or ap is None:
        return list(range(show))
    fails = sorted(np.flatnonzero(precision < 1).tolist(), key=lambda i: (precision[i], ap[i], i))
    goods = np.flatnonzero(precision >= 1).tolist()
    reserve = 0 if not fails or show < 2 else max(1, show // 4)
    n_fail = min(len(fails), show - min(reserve, len(goods)))
    return fails[:n_fail] + goods[: show - n_fail]


def _thumb(img: torch.Tensor) -> np.ndarray:
    a = img.numpy()
    return a[0] if a.shape[0] == 1 else np.transpose(a[:3], (1, 2, 0))


def _metric_notes(metrics: dict[str, float], metric: str) -> list[tuple[str, str, str]]:
    """(name, value, meaning) of every number the page shows."""
    k = int(metrics.get("k", 0))
    notes = []
    if metrics:
        notes = [
            (f"precision@{k}", f"{metrics[f'precision@{k}']:.3f}",
             f"share of a query's {k} neighbours that have the query's class, averaged over the queries"),
            (f"mAP@{k}", f"{metrics[f'map@{k}']:.3f}",
             f"mean over queries of AP@{k}: the precision at each rank that holds a same-class neighbour, summed "
             f"and divided by min({k}, R), R = index images of that class; 1 when the same-class images come first"),
        ]  # fmt: skip
    dist = (
        "1 - cosine similarity (0: same direction)"
        if metric == "cosine"
        else "Euclidean distance (0: identical)"
    )
    notes.append(("d", "", f"distance to the query: {dist}; smaller is nearer"))
    return notes


def render_png(r: Any, order: list[int], q_images: torch.Tensor, x_images: torch.Tensor, q_labels: np.ndarray | None,
               x_labels: np.ndarray, classes: list[str], path: Path, metric: str) -> Path:  # fmt: skip
    """A grid: one row per query in ``order`` (query, then its neighbours, each titled rank, class, distance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    rows, k = max(1, len(order)), r.neighbors.shape[1]
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.25 * (k + 1), 1.75 * rows + 0.9), dpi=100, squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax in axes.flat:
        ax.set_axis_off()
    for row, i in enumerate(order):
        fail = q_labels is not None and r.query_precision is not None and r.query_precision[i] < 1
        head = "query" + (f": {classes[q_labels[i]]}" if q_labels is not None else "")
        if r.query_precision is not None:
            head += f"\nP@{k} {r.query_precision[i]:.2f} AP {r.query_ap[i]:.2f}"
        cells = [(q_images[i], head, "#b00020" if fail else "black", 2.5)]
        for j, n in enumerate(r.neighbors[i]):
            if q_labels is None:
                mark, color = "", "black"
            else:
                ok = x_labels[n] == q_labels[i]
                mark, color = (OK_MARK, "#1b7a1b") if ok else (BAD_MARK, "#c62828")
            cells.append(
                (
                    x_images[n],
                    f"#{j + 1} {mark} {classes[x_labels[n]][:10]}\nd {r.distances[i, j]:.3f}",
                    color,
                    2.5,
                )
            )
        for ax, (img, title, color, lw) in zip(axes[row], cells, strict=True):
            ax.set_axis_on()
            ax.imshow(
                _thumb(img),
                cmap="gray" if img.shape[0] == 1 else None,
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
            ax.set_title(title, fontsize=9.5, color=color)
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_edgecolor(color)
                s.set_linewidth(lw)
    summary = "  |  ".join(f"{name} {value}" for name, value, _ in _metric_notes(r.metrics, metric) if value)
    fails = "" if r.query_precision is None else (
        f"  |  {int((r.query_precision < 1).sum())} of {len(r.query_precision)} queries have a wrong neighbour "
        f"(shown first, red)")  # fmt: skip
    fig.suptitle(f"{r.description}\n{summary}{fails}", fontsize=11)
    atomic_write(path, lambda p: fig.savefig(p, format="png"))
    plt.close(fig)
    return path


def _data_uri(img: torch.Tensor) -> str:
    from PIL import Image

    a = _thumb(img)
    buf = io.BytesIO()
    Image.fromarray(a, mode="L" if a.ndim == 2 else "RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


CSS = f"""
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}}
main{{max-width:1240px;margin:0 auto;padding:18px 20px 50px}}
h1{{font-size:22px;margin:6px 0 4px}} h2{{font-size:18px;margin:26px 0 8px;border-bottom:2px solid #dde1e6}}
.sub,.note{{color:#56606b;font-size:14px;margin:4px 0 10px;max-width:1100px}}
.cards{{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}}
.card{{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:8px 12px;max-width:340px}}
.card b{{display:block;font-size:22px}} .card span{{color:#56606b;font-size:13px}}
table{{border-collapse:separate;border-spacing:4px 6px}}
td{{vertical-align:top;text-align:center;font-size:12.5px;line-height:1.3;width:{THUMB_PX + 6}px}}
td div{{max-width:{THUMB_PX + 6}px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}}
img{{width:{THUMB_PX}px;height:{THUMB_PX}px;image-rendering:pixelated;display:block;margin:0 auto 2px;border:3px solid #999}}
td.q{{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:3px}} td.q img{{border-color:#1d232a}}
img.ok{{border-color:#2a9d2a}} img.bad{{border-color:#d32f2f}}
.okt{{color:#1b7a1b;font-weight:600}} .badt{{color:#c62828;font-weight:700}}
"""


def _row(r: Any, i: int, q_images: torch.Tensor, x_images: torch.Tensor, q_labels: np.ndarray | None,
         x_labels: np.ndarray, classes: list[str]) -> str:  # fmt: skip
    e = html.escape
    k = r.neighbors.shape[1]
    label = f"<div><b>{e(classes[q_labels[i]])}</b></div>" if q_labels is not None else ""
    score = ""
    if r.query_precision is not None:
        score = (f"<div title='precision@{k} of this query'>P@{k} {r.query_precision[i]:.2f}</div>"
                 f"<div title='AP@{k} of this query'>AP {r.query_ap[i]:.2f}</div>")  # fmt: skip
    qid = Path(r.query_ids[i]).name
    cells = [f"<td class='q'><img src='{_data_uri(q_images[i])}' alt='query'><div>query</div>{label}"
             f"<div title='{e(r.query_ids[i])}'><small>{e(qid)}</small></div>{score}</td>"]  # fmt: skip
    for j, n in enumerate(r.neighbors[i]):
        name = classes[x_labels[n]]
        if q_labels is None:
            cls, mark = "", ""
        elif x_labels[n] == q_labels[i]:
            cls, mark = "ok", f"<span class='okt'>{OK_MARK} same class</span>"
        else:
            cls, mark = "bad", f"<span class='badt'>{BAD_MARK} wrong class</span>"
        cells.append(f"<td><img class='{cls}' src='{_data_uri(x_images[n])}' alt='neighbour {j + 1}'>"
                     f"<div title='{e(name)}'>#{j + 1} <b>{e(name)}</b></div><div>d = {r.distances[i, j]:.3f}</div>"
                     f"<div>{mark}</div></td>")  # fmt: skip
    return "<tr>" + "".join(cells) + "</tr>"


def render_html(r: Any, order: list[int], q_images: torch.Tensor, x_images: torch.Tensor,
                q_labels: np.ndarray | None, x_labels: np.ndarray, classes: list[str], metric: str) -> str:  # fmt: skip
    """A self-contained page (images inlined as data URIs): metrics explained, failures first, one row per query."""
    e = html.escape
    k = r.neighbors.shape[1]
    q = len(r.query_ids)
    cards = "".join(f"<div class='card'><span>{e(name)}</span><b>{value}</b><span>{e(text)}</span></div>"
                    for name, value, text in _metric_notes(r.metrics, metric) if value)  # fmt: skip
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>retrieval: {e(r.description)}</title>"
             f"<style>{CSS}</style></head><body><main>",
             f"<h1>Image retrieval: {e(r.description)}</h1>",
             f"<p class='sub'>{q:,} queries searched among {len(r.index_ids):,} index images; the {k} nearest "
             f"neighbours of each.</p>"]  # fmt: skip
    if r.query_precision is not None:
        n_fail = int((r.query_precision < 1).sum())
        cards += (f"<div class='card'><span>queries with a wrong neighbour</span><b>{n_fail:,} of {q:,}</b>"
                  f"<span>{n_fail / max(q, 1):.1%} of the queries have at least one of their {k} neighbours in "
                  f"another class</span></div>")  # fmt: skip
    parts.append(f"<div class='cards'>{cards}</div>")
    how = (
        ""
        if q_labels is None
        else (
            f"Green frame and {OK_MARK}: the neighbour has the query's class; red frame and {BAD_MARK}: another class. "
        )
    )
    parts.append(f"<p class='note'>Each row: the query (its class, file or id, and its own P@{k} and AP@{k}), then "
                 f"its neighbours nearest first, each with its rank, class and distance d. {e(how)}d is "
                 f"{e(_metric_notes({}, metric)[-1][2])}.</p>")  # fmt: skip
    if r.query_precision is None:
        parts.append(f"<h2>Queries (unlabelled: no right or wrong), first {len(order)}</h2><table>")
        parts += [_row(r, i, q_images, x_images, q_labels, x_labels, classes) for i in order]
        parts.append("</table>")
    else:
        fails = [i for i in order if r.query_precision[i] < 1]
        goods = [i for i in order if r.query_precision[i] >= 1]
        n_fail, n_good = int((r.query_precision < 1).sum()), int((r.query_precision >= 1).sum())
        if fails:
            parts.append(f"<h2>Failures: queries with a wrong neighbour ({len(fails)} shown of {n_fail}, worst "
                         f"first)</h2><table>")  # fmt: skip
            parts += [_row(r, i, q_images, x_images, q_labels, x_labels, classes) for i in fails]
            parts.append("</table>")
        elif n_fail == 0:
            parts.append(
                "<h2>Failures</h2><p class='note'>None: every neighbour of every query has its class.</p>"
            )
        if goods:
            parts.append(f"<h2>Successes: all {k} neighbours of the query's class ({len(goods)} shown of {n_good})"
                         f"</h2><table>")  # fmt: skip
            parts += [_row(r, i, q_images, x_images, q_labels, x_labels, classes) for i in goods]
            parts.append("</table>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
