"""Content-based image retrieval with CNN features: nearest neighbours, precision@k and mAP@k.

The index is a dataset's training split; queries are its test (or validation) split or image files.
Each query's k nearest index images (cosine or Euclidean distance, optionally after PCA, or
approximated with product-quantisation codes) are drawn as a PNG and an HTML page of thumbnails,
failing queries first (``retrieval_page.py``).
On labelled queries a neighbour is *relevant* when it has the query's class, and

* precision@k = (relevant among the first k) / k, averaged over queries;
* AP@k = (1 / min(k, R)) * sum over ranks i <= k of precision@i * rel(i), with R the number of index
  images of the query's class (so a perfect list scores 1 even when R < k); mAP@k is its mean.

``features="pixels"`` runs the same search on raw pixels: the baseline the CNN features must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import DatasetSplits
from ..errors import ConfigError, DataError
from .features import features_of, resolve_source
from .pq import DEFAULT_CHUNK_MB, _row_blocks, _sq_dists, _topk

METRICS = ("cosine", "l2")


def retrieval_metrics(
    query_labels: Sequence[int] | np.ndarray,
    retrieved_labels: np.ndarray,
    k: int | None = None,
    n_relevant: Sequence[int] | np.ndarray | None = None,
) -> dict[str, float]:
    """precision@k and mAP@k of ranked lists (``retrieved_labels``: Q x >=k labels, best first).

    ``n_relevant[q]`` is how many index items share query q's label (the R of AP@k); without it R is
    taken as the number of relevant items retrieved, which can only overstate AP.
    """
    q = np.asarray(query_labels)
    r = np.asarray(retrieved_labels)
    if r.ndim != 2 or len(r) != len(q):
        raise ValueError("retrieved_labels must be Q x k with one row per query")
    k = r.shape[1] if k is None else k
    if not 1 <= k <= r.shape[1]:
        raise ValueError(f"k={k} but only {r.shape[1]} results per query")
    precision, ap = query_scores(q, r, k, n_relevant)
    return {f"precision@{k}": float(precision.mean()) if len(q) else 0.0,
            f"map@{k}": float(ap.mean()) if len(q) else 0.0, "queries": int(len(q)), "k": int(k)}  # fmt: skip


def query_scores(query_labels: np.ndarray, retrieved_labels: np.ndarray, k: int,
                 n_relevant: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """precision@k and AP@k of each query (the numbers :func:`retrieval_metrics` averages)."""
    q, r = np.asarray(query_labels), np.asarray(retrieved_labels)
    rel = (r[:, :k] == q[:, None]).astype(np.float64)
    prec_at_i = np.cumsum(rel, 1) / np.arange(1, k + 1)
    denom = rel.sum(1) if n_relevant is None else np.minimum(k, np.asarray(n_relevant, dtype=np.float64))
    ap = np.divide((prec_at_i * rel).sum(1), denom, out=np.zeros(len(q)), where=denom > 0)
    return rel.mean(1), ap


def nearest_neighbors(
    index: np.ndarray, queries: np.ndarray, k: int, metric: str = "cosine", pq: int | None = None,
    pq_bits: int = 8, seed: int = 0, *, chunk_mb: float = DEFAULT_CHUNK_MB,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Indices (Q x k) of each query's ``k`` nearest index rows, and their distances.

    Cosine distance is 1 - cos; it ranks exactly like Euclidean distance between L2-normalised
    vectors, which is how the product-quantised search (``pq=M``, asymmetric distances) handles it.
    Queries are processed in blocks whose distance temporaries stay within about ``chunk_mb``
    megabytes, so memory does not grow with the number of queries.
    """
    if metric not in METRICS:
        raise ConfigError(f"--metric {metric!r} is not allowed", hint="use cosine or l2")
    x = np.asarray(index, dtype=np.float32)
    y = np.asarray(queries, dtype=np.float32)
    if metric == "cosine":
        x = _unit(x)
    k = min(k, len(x))
    if pq is not None:
        from .pq import ProductQuantizer

        quant = ProductQuantizer(pq, pq_bits, seed).fit(x)
        codes = quant.encode(x, chunk_mb=chunk_mb)
        per_row = 4 * len(x) * (pq + 1)  # B x N x M gathered table entries, then B x N distances

        def search(yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return quant.search(yb, codes, k, chunk_mb=chunk_mb)
    else:
        x_sq = (x * x).sum(1)
        per_row = 4 * len(x)  # the block's B x N distances

        def search(yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return _topk(_sq_dists(yb, x, x_sq), k)
    idx = np.empty((len(y), k), dtype=np.int64)
    d = np.empty((len(y), k), dtype=np.float32)
    # A hand-written loop over query blocks: all queries at once would need a Q x N distance matrix
    # (10k x 50k float32 = 2 GB per temporary); a block keeps only its rows' top k, so the peak extra
    # memory is set by chunk_mb, not by Q. Rows are independent, so results do not depend on blocking.
    for s in _row_blocks(len(y), per_row, chunk_mb):
        idx[s], d[s] = search(_unit(y[s]) if metric == "cosine" else y[s])
    if metric == "cosine":
        d /= 2.0  # |a - b|^2 = 2 - 2 cos for unit vectors
    return idx, d


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


@dataclass
class RetrievalResult:
    """Neighbours of every query and, for labelled queries, the retrieval metrics."""

    neighbors: np.ndarray  # Q x k rows of the index
    distances: np.ndarray
    query_ids: list[str]
    index_ids: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""
    png: Path | None = None
    html: Path | None = None
    query_precision: np.ndarray | None = None  # per labelled query: precision@k and AP@k
    query_ap: np.ndarray | None = None
    shown: list[int] = field(default_factory=list)  # queries drawn in the PNG/HTML, in their order there


def _query_images(query: str | Sequence[str | Path], ds: DatasetSplits) -> tuple[torch.Tensor, np.ndarray | None, list[str]]:
    if isinstance(query, str) and query in ("test", "val", "train"):
        part = ds.split(query)
        if not len(part):
            raise DataError(f"the {query} split of {ds.name!r} is empty: nothing to query with")
        return part.images, part.labels.numpy(), list(part.ids)
    from ..data.images import read_image
    from ..evaluate.predict import collect_images

    files = collect_images([query] if isinstance(query, (str, Path)) else list(query))
    if not files:
        raise DataError(f"no query images found in {query}")
    c, h, w = ds.image_shape
    return torch.stack([read_image(f, c, (h, w)) for f in files]), None, [str(f) for f in files]


def retrieve(
    index: str | DatasetSplits | None = None,
    query: str | Sequence[str | Path] = "test",
    *,
    k: int = 10,
    model: Any = None,
    features: str = "model",
    layer: str | None = None,
    pool: str = "avg",
    pca: int | None = None,
    pq: int | None = None,
    pq_bits: int = 8,
    metric: str = "cosine",
    out: str | Path | None = None,
    show: int = 8,
    seed: int = 0,
    device: str = "auto",
) -> RetrievalResult:
    """Search the training split of ``index`` for each query's ``k`` nearest images.

    ``model`` is a run folder (or model name / module) giving the features (``layer``, default the
    classifier's input); ``features="pixels"`` uses raw pixels instead. ``index`` defaults to the run's
    dataset with its recorded split. ``query`` is ``"test"``, ``"val"`` or image paths/folders
    (unlabelled: no metrics). ``out=FILE.png`` also writes ``FILE.html``; both show the first ``show``
    queries.
    """
    if features not in ("model", "pixels"):
        raise ConfigError(f"--features {features!r} is not allowed", hint="use model or pixels")
    if k < 1:
        raise ConfigError(f"-k must be >= 1, got {k}")
    if features == "pixels":
        if index is None and model is not None:
            # The same images the model would see: its data at its input size.
            _, ds, _, _, _ = resolve_source(model, None, device=device)
        elif index is None:
            raise ConfigError("--index DATA is needed for raw-pixel retrieval")
        else:
            ds = index if isinstance(index, DatasetSplits) else resolve_source("pixels", index)[1]
        net, mean, std, desc = None, ds.mean, ds.std, "raw pixels"
    else:
        if model is None:
            raise ConfigError("retrieval with CNN features needs --model RUN_DIR", hint="or use --features pixels")
        net, ds, mean, std, desc = resolve_source(model, index, device=device)
    base = ds.train
    if not len(base):
        raise DataError(f"the train split of {ds.name!r} is empty: nothing to search")
    if k > len(base):
        raise ConfigError(f"-k {k} exceeds the {len(base)} images in the index")
    q_images, q_labels, q_ids = _query_images(query, ds)
    fx = features_of(net, base.images, mean, std, layer, pool)
    fq = features_of(net, q_images, mean, std, layer, pool)
    if pca is not None:
        from sklearn.decomposition import PCA

        if not 1 <= pca <= min(fx.shape):
            raise ConfigError(f"--pca {pca} is out of range", hint=f"use 1 <= K <= {min(fx.shape)}")
        p = PCA(n_components=pca, random_state=seed).fit(fx)  # fitted on the index only
        fx, fq = p.transform(fx), p.transform(fq)
        desc += f", PCA {pca}"
    if pq is not None:
        desc += f", PQ {pq}x{pq_bits} bits"
    idx, dist = nearest_neighbors(fx, fq, k, metric, pq, pq_bits, seed)
    result = RetrievalResult(idx, dist, q_ids, list(base.ids), description=f"{desc}, {metric} distance")
    index_labels = base.labels.numpy()
    if q_labels is not None:
        counts = np.bincount(index_labels, minlength=ds.num_classes)
        result.metrics = retrieval_metrics(q_labels, index_labels[idx], k, counts[q_labels])
        result.query_precision, result.query_ap = query_scores(q_labels, index_labels[idx], k, counts[q_labels])
    if out is not None:
        result.png, result.html = _render(result, q_images, base.images, q_labels, index_labels, ds.classes, out, show,
                                          metric)  # fmt: skip
    return result


def _render(
    r: RetrievalResult, q_images: torch.Tensor, x_images: torch.Tensor, q_labels: np.ndarray | None,
    x_labels: np.ndarray, classes: list[str], out: str | Path, show: int, metric: str,
) -> tuple[Path, Path]:  # fmt: skip
    """The grid PNG and the HTML page beside it, both showing the failing queries first."""
    from ..io import atomic_write_text
    from .retrieval_page import display_order, render_html, render_png

    png = Path(out)
    if png.suffix.lower() != ".png":
        png = png.with_suffix(".png")
    page = png.with_suffix(".html")
    r.shown = display_order(len(r.query_ids), r.query_precision, r.query_ap, show)
    render_png(r, r.shown, q_images, x_images, q_labels, x_labels, classes, png, metric)
    atomic_write_text(page, render_html(r, r.shown, q_images, x_images, q_labels, x_labels, classes, metric))
    return png, page
