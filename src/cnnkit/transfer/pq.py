"""Product quantisation (Jegou, Douze and Schmid 2011), written with scikit-learn's k-means.

A D-dimensional vector is cut into M sub-vectors; each sub-space gets its own codebook of K centroids
(k-means on the training vectors), and a vector is stored as M centroid indices: with K = 256, one byte
per sub-vector, so 84 floats (336 bytes) become e.g. 12 bytes. Distances to a query are computed
without decoding ("asymmetric distance computation"): one table of query-to-centroid distances per
sub-space, then M table look-ups per database vector.

Why our own ~80 lines: faiss (the reference implementation) is not a cnnkit dependency and has no
wheels for every platform we support; nanopq is another dependency for the same few lines. k-means
per sub-space is exactly what both do; scikit-learn's ``KMeans`` is already in our stack.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


class ProductQuantizer:
    """``fit`` codebooks on training vectors, ``encode`` to uint8/uint16 codes, ``decode``, ``search``."""

    def __init__(self, m: int, bits: int = 8, seed: int = 0) -> None:
        if m < 1:
            raise ConfigError(f"--pq must be >= 1 sub-vectors, got {m}")
        if not 1 <= bits <= 16:
            raise ConfigError(f"--pq-bits must be between 1 and 16, got {bits}")
        self.m, self.bits, self.seed = m, bits, seed
        self.codebooks: list[np.ndarray] = []  # M arrays of K_m x d_m centroids
        self.bounds: list[tuple[int, int]] = []  # column range of each sub-vector

    def fit(self, x: np.ndarray) -> ProductQuantizer:
        """Learn one k-means codebook per sub-vector from ``x`` (N x D)."""
        from sklearn.cluster import KMeans

        x = np.asarray(x, dtype=np.float32)
        n, d = x.shape
        if self.m > d:
            raise ConfigError(f"--pq {self.m} sub-vectors exceed the feature dimension {d}",
                              hint=f"use --pq <= {d} (or reduce with --pca first)")  # fmt: skip
        # array_split allows D not divisible by M: sub-vectors differ in length by at most one.
        cuts = np.array_split(np.arange(d), self.m)
        self.bounds = [(int(c[0]), int(c[-1]) + 1) for c in cuts]
        k = min(2**self.bits, n)  # more centroids than training vectors is meaningless
        self.codebooks = []
        for i, (a, b) in enumerate(self.bounds):
            km = KMeans(n_clusters=k, n_init=1, random_state=self.seed + i).fit(x[:, a:b])
            self.codebooks.append(km.cluster_centers_.astype(np.float32))
        return self

    @property
    def dtype(self) -> type:
        return np.uint8 if self.bits <= 8 else np.uint16

    def _check(self) -> None:
        if not self.codebooks:
            raise RuntimeError("ProductQuantizer.fit must be called first")

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid per sub-vector: N x M codes."""
        self._check()
        x = np.asarray(x, dtype=np.float32)
        codes = np.empty((len(x), self.m), dtype=self.dtype)
        for i, ((a, b), cb) in enumerate(zip(self.bounds, self.codebooks, strict=True)):
            codes[:, i] = _sq_dists(x[:, a:b], cb).argmin(1)
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The approximate vectors the codes stand for (concatenated centroids)."""
        self._check()
        return np.concatenate([cb[codes[:, i]] for i, cb in enumerate(self.codebooks)], axis=1)

    def distance_tables(self, queries: np.ndarray) -> np.ndarray:
        """Squared distances from each query's sub-vectors to every centroid: Q x M x K."""
        self._check()
        q = np.asarray(queries, dtype=np.float32)
        return np.stack([_sq_dists(q[:, a:b], cb) for (a, b), cb in zip(self.bounds, self.codebooks, strict=True)],
                        axis=1)  # fmt: skip

    def search(self, queries: np.ndarray, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` database codes nearest each query by asymmetric distance: (indices, squared distances)."""
        tables = self.distance_tables(queries)  # Q x M x K
        m_idx = np.arange(self.m)
        # d(q, n) = sum_m table[q, m, codes[n, m]]; gather per query to keep memory at N x M.
        dists = np.stack([t[m_idx, codes].sum(1) for t in tables])
        return _topk(dists, k)

    def state(self) -> dict[str, np.ndarray]:
        """Arrays for an ``.npz`` file (codebooks padded to one K x max(d) block per sub-vector)."""
        self._check()
        width = max(b - a for a, b in self.bounds)
        k = self.codebooks[0].shape[0]
        books = np.zeros((self.m, k, width), dtype=np.float32)
        for i, cb in enumerate(self.codebooks):
            books[i, :, : cb.shape[1]] = cb
        return {"pq_codebooks": books, "pq_bounds": np.array(self.bounds, dtype=np.int64),
                "pq_bits": np.array(self.bits)}  # fmt: skip

    @classmethod
    def from_state(cls, d: dict[str, np.ndarray]) -> ProductQuantizer:
        bounds = [tuple(int(v) for v in r) for r in d["pq_bounds"]]
        pq = cls(len(bounds), int(d["pq_bits"]))
        pq.bounds = bounds  # type: ignore[assignment]
        pq.codebooks = [d["pq_codebooks"][i, :, : b - a] for i, (a, b) in enumerate(bounds)]
        return pq


def _sq_dists(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances N x K, via |x|^2 - 2 x.c + |c|^2 (clipped at 0 against round-off)."""
    d = (x * x).sum(1, keepdims=True) - 2.0 * x @ c.T + (c * c).sum(1)[None]
    return np.maximum(d, 0.0)


def _topk(dists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` smallest entries per row, sorted (ties broken by index)."""
    n = dists.shape[1]
    k = min(k, n)
    if k < n:  # argpartition finds the k smallest in O(n); only those k are then sorted
        part = np.argpartition(dists, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (len(dists), 1))
    vals = np.take_along_axis(dists, part, 1)
    order = np.lexsort((part, vals), axis=1)  # by distance, then by index: deterministic ties
    idx = np.take_along_axis(part, order, 1)
    return idx, np.take_along_axis(dists, idx, 1)
