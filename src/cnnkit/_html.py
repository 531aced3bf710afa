"""Small HTML pieces for the notebook displays (``_repr_html_``) of runs, datasets, summaries and results.

Jupyter shows an object's ``_repr_html_()`` instead of its ``repr``; these helpers build the
tables and inline thumbnails those methods return. Every value is escaped (class names and paths
come from the user's files), and nothing here imports the rest of cnnkit, so any layer may use it.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

_CSS = "border-collapse:collapse;font-size:12px;margin:2px 0"
_CELL = "padding:1px 8px;border-bottom:1px solid #ddd"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], right: Sequence[bool] | None = None,
          caption: str | None = None) -> str:  # fmt: skip
    """An HTML table; ``right`` marks the columns to right-align (numbers)."""

    def align(i: int) -> str:
        return "right" if right is not None and i < len(right) and right[i] else "left"

    out = [f'<table style="{_CSS}">']
    if caption:
        out.append(f'<caption style="text-align:left;font-weight:bold">{esc(caption)}</caption>')
    if header:
        out.append("<tr>" + "".join(f'<th style="{_CELL};text-align:{align(i)}">{esc(h)}</th>'
                                    for i, h in enumerate(header)) + "</tr>")  # fmt: skip
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{_CELL};text-align:{align(i)}">{esc(v)}</td>'
                                    for i, v in enumerate(row)) + "</tr>")  # fmt: skip
    out.append("</table>")
    return "".join(out)


def fields(pairs: Iterable[tuple[str, Any]], caption: str | None = None) -> str:
    """A two-column table of ``name: value`` lines (values already formatted as text)."""
    return table(None, [(f"{k}", v) for k, v in pairs], caption=caption)


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def img(data: bytes, width: int | None = None, title: str = "", pixelated: bool = False) -> str:
    """An ``<img>`` holding PNG bytes inline (a notebook keeps no link to a file that may move).

    ``pixelated``: enlarge small images (8x8 digits) as crisp squares instead of a blur.
    """
    w = f' width="{int(width)}"' if width else ""
    style = "image-rendering:pixelated;" if pixelated else ""
    return f'<img src="{png_data_uri(data)}"{w} title="{esc(title)}" style="{style}margin:1px">'


def thumbnails(images: Any, labels: Sequence[str], height: int = 48) -> str:
    """uint8 images ``N x C x H x W`` (tensor or array) as a row of small inline PNGs with captions."""
    from PIL import Image

    cells = []
    for im, label in zip(images, labels, strict=False):
        a = im.numpy() if hasattr(im, "numpy") else im
        a = a.transpose(1, 2, 0)
        pil = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a[:, :, :3])
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        scale = max(1, round(height / max(pil.size[1], 1)))
        cells.append(f'<figure style="display:inline-block;margin:2px;text-align:center">'
                     f"{img(buf.getvalue(), width=pil.size[0] * scale, title=label, pixelated=True)}"
                     f'<figcaption style="font-size:11px">{esc(label)}</figcaption></figure>')  # fmt: skip
    return "<div>" + "".join(cells) + "</div>"


def section(title: str, *parts: str) -> str:
    """A titled block: the object's name in bold, then its parts."""
    return f'<div><div style="font-weight:bold;margin:4px 0">{esc(title)}</div>{"".join(parts)}</div>'


def shorten(items: Sequence[Any], n: int = 12) -> str:
    """``a, b, c, ... (40 in all)`` for long lists."""
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")
