"""Bounded memory (issue 18, item 5): retrieval and PQ search run in query blocks.

Chunked searches must return exactly what one unchunked block returns, and a 20,000 x 50,000 x 512
search must stay under 1 GB of extra memory, measured as the peak RSS of a fresh child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cnnkit
from cnnkit.transfer import ProductQuantizer, nearest_neighbors
from cnnkit.transfer.pq import _row_blocks

LIMIT = 10**9  # bytes: "under 1 GB of extra memory"
TINY_MB = 0.01  # a few rows per block on the small problems below
HUGE_MB = 1e6  # every query in one block: the unchunked computation


def _problem(n: int = 400, q: int = 53, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(q, d)).astype(np.float32)


def _ranked(dists: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k smallest entries, by value then index."""
    cols = np.broadcast_to(np.arange(dists.shape[1]), dists.shape)
    return np.lexsort((cols, dists), axis=1)[:, :k]


def _assert_same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    """Same neighbours in the same order, and the same distances up to float32 rounding: BLAS may pick
    another kernel (summation order) for a block of another shape, which moves the last bit."""
    assert np.array_equal(a[0], b[0])
    assert a[1].dtype == b[1].dtype and np.allclose(a[1], b[1], rtol=1e-6, atol=1e-7)


def test_row_blocks_cover_every_row_once_within_the_budget():
    blocks = list(_row_blocks(1000, 4 * 400, TINY_MB))
    assert len(blocks) > 5 and blocks[0].start == 0 and blocks[-1].stop == 1000
    assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:], strict=False))
    assert all((s.stop - s.start) * 4 * 400 <= TINY_MB * 2**20 for s in blocks)
    assert len(list(_row_blocks(3, 10**12, 1.0))) == 3  # at least one row per block
    with pytest.raises(ValueError, match="chunk_mb"):
        list(_row_blocks(3, 4, 0))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_chunked_neighbours_equal_unchunked_and_brute_force(metric):
    x, q = _problem()
    assert len(list(_row_blocks(len(q), 4 * len(x), TINY_MB))) > 5  # several blocks are really used
    idx, d = nearest_neighbors(x, q, k=7, metric=metric, chunk_mb=TINY_MB)
    _assert_same((idx, d), nearest_neighbors(x, q, k=7, metric=metric, chunk_mb=HUGE_MB))
    assert idx.shape == (len(q), 7) and idx.dtype == np.int64 and d.dtype == np.float32
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x64 /= np.linalg.norm(x64, axis=1, keepdims=True)
        q64 /= np.linalg.norm(q64, axis=1, keepdims=True)
    brute = ((q64[:, None] - x64[None]) ** 2).sum(-1) / (2.0 if metric == "cosine" else 1.0)
    assert np.array_equal(idx, _ranked(brute, 7))
    assert np.allclose(d, np.take_along_axis(brute, idx, 1), atol=1e-5)
    # k as large as the index (every row ranked) also goes through the blocks.
    full = nearest_neighbors(x, q, k=len(x) + 5, metric=metric, chunk_mb=TINY_MB)
    _assert_same(full, nearest_neighbors(x, q, k=len(x), metric=metric, chunk_mb=HUGE_MB))
    assert np.array_equal(np.sort(full[0], 1), np.tile(np.arange(len(x)), (len(q), 1)))
    assert (np.diff(full[1], axis=1) >= 0).all()


def test_chunked_pq_search_equals_the_per_query_computation():
    x, q = _problem()
    pq = ProductQuantizer(m=8, bits=4, seed=0).fit(x)  # 24 dims in sub-vectors of 3; M >= 8 sums pairwise
    codes = pq.encode(x, chunk_mb=TINY_MB)
    assert np.array_equal(codes, pq.encode(x, chunk_mb=HUGE_MB))
    assert len(list(_row_blocks(len(q), 4 * len(x) * (pq.m + 1), TINY_MB))) > 5
    idx, d = pq.search(q, codes, k=6, chunk_mb=TINY_MB)
    _assert_same((idx, d), pq.search(q, codes, k=6, chunk_mb=HUGE_MB))
    # The unchunked computation PQ search used before: a per-query gather of all Q x N distances.
    m_idx = np.arange(pq.m)
    before = np.stack([t[m_idx, codes].sum(1) for t in pq.distance_tables(q)])
    _assert_same((idx, d), (_ranked(before, 6), np.sort(before, 1)[:, :6]))
    # And through nearest_neighbors, both metrics.
    for metric in ("l2", "cosine"):
        a = nearest_neighbors(x, q, k=5, metric=metric, pq=6, pq_bits=4, chunk_mb=TINY_MB)
        _assert_same(a, nearest_neighbors(x, q, k=5, metric=metric, pq=6, pq_bits=4, chunk_mb=HUGE_MB))


# The child process builds its inputs, records its resident memory, resets the peak (VmHWM) when the
# kernel allows it (else the peak before the search only makes the measurement larger), runs each
# search, and reports peak RSS minus the RSS before that search.
_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from cnnkit.transfer import ProductQuantizer, nearest_neighbors

    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024  # kB

    def measure(fn):
        base = status("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak RSS to the current RSS
        except OSError:
            pass
        out = fn()
        return out, status("VmHWM") - base

    mode, q, n, d = sys.argv[1], *map(int, sys.argv[2:5])
    rng = np.random.default_rng(0)
    y = rng.standard_normal((q, d), dtype=np.float32)
    report = {}
    if mode == "pq":
        m, k = 8, 256
        w = d // m
        pq = ProductQuantizer.from_state({
            "pq_codebooks": rng.standard_normal((m, k, w), dtype=np.float32),
            "pq_bounds": np.array([(i * w, (i + 1) * w) for i in range(m)]), "pq_bits": np.array(8)})
        codes = rng.integers(0, k, (n, m), dtype=np.uint8)
        (idx, dist), report["pq"] = measure(lambda: pq.search(y, codes, 10))
        rows = [0, 1, q // 2, q - 1]  # spot check against the plain per-query computation
        ref = np.stack([t[np.arange(m), codes].sum(1) for t in pq.distance_tables(y[rows])])
        assert np.allclose(np.sort(ref, 1)[:, :10], dist[rows], rtol=1e-6), "PQ spot check failed"
    else:
        x = rng.standard_normal((n, d), dtype=np.float32)
        for metric in ("l2", "cosine"):
            (idx, dist), report[metric] = measure(lambda: nearest_neighbors(x, y, 10, metric))
            assert idx.shape == (q, 10) and dist.shape == (q, 10)
        rows = [0, 1, q // 2, q - 1]  # spot check (cosine) across block boundaries
        xs = x / np.linalg.norm(x, axis=1, keepdims=True)
        ys = y[rows] / np.linalg.norm(y[rows], axis=1, keepdims=True)
        ref = np.argsort(-(ys.astype(np.float64) @ xs.T.astype(np.float64)), 1)[:, :10]
        assert np.array_equal(ref, idx[rows]), "retrieval spot check failed"
    print(json.dumps(report))
    """
)


def _child_peaks(*args: object) -> dict[str, int]:
    src = str(Path(cnnkit.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\npeak extra memory (MiB): " + ", ".join(f"{k} {v / 2**20:.0f}" for k, v in peaks.items()))
    return peaks


@pytest.mark.slow
def test_retrieval_of_20k_queries_against_50k_vectors_stays_under_1_gb():
    q, n, d = 20_000, 50_000, 512
    assert q * n * 4 > 3 * LIMIT  # one unchunked Q x N float32 distance matrix alone would be 4 GB
    peaks = _child_peaks("brute", q, n, d)
    assert set(peaks) == {"l2", "cosine"}
    for metric, extra in peaks.items():
        assert 0 < extra < LIMIT, f"{metric}: {extra / 2**20:.0f} MiB extra"


@pytest.mark.slow
def test_pq_search_memory_is_bounded():
    # Smaller than the brute-force case (the B x N x M gather is the slow part), but one unchunked
    # Q x N float32 distance matrix would still exceed the bound on its own.
    q, n, d = 10_000, 30_000, 64
    assert q * n * 4 > LIMIT
    peaks = _child_peaks("pq", q, n, d)
    assert 0 < peaks["pq"] < LIMIT, f"pq: {peaks['pq'] / 2**20:.0f} MiB extra"
