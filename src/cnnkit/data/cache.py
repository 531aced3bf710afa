"""The decoded-image cache: a folder of images is decoded once, later runs load one ``.npy`` file.

An entry is ``<key>.npy`` (the uint8 ``N x C x H x W`` array, read with ``allow_pickle=False``) and
``<key>.json`` (labels, ids, skipped files, decode time). The key hashes everything that decides
the pixels: each file's path, size and modification time, its label, the target size and channels,
and :data:`DECODER_VERSION`. Change a file and its entry is simply never asked for again; delete the
folder (``$CNNKIT_CACHE`` or ``~/.cache/cnnkit/decoded``) to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write, atomic_write_json

DECODER_VERSION = 1  # bump when decode_array's output changes for the same file


def cache_dir() -> Path:
    env = os.environ.get("CNNKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cnnkit" / "decoded"


def cache_key(records: Iterable[tuple[Any, ...]], **target: Any) -> str:
    """A hex digest of ``records`` (e.g. ``(path, size, mtime_ns, label)``) and the target settings."""
    h = hashlib.sha256()
    h.update(json.dumps({"decoder": DECODER_VERSION, **target}, sort_keys=True).encode())
    for r in records:
        h.update(b"\0" + "\t".join(map(str, r)).encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:40]


def load_entry(key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached array and metadata, or ``None`` when absent or unreadable (then it is rebuilt)."""
    d = cache_dir()
    meta_p, arr_p = d / f"{key}.json", d / f"{key}.npy"
    if not meta_p.is_file() or not arr_p.is_file():
        return None
    try:
        meta = json.loads(meta_p.read_text())
        arr = np.load(arr_p, allow_pickle=False)
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if arr.dtype != np.uint8 or list(arr.shape) != meta.get("shape"):
        return None
    return arr, meta


def save_entry(key: str, array: np.ndarray, meta: dict[str, Any]) -> Path | None:
    """Write an entry atomically (array first, then the metadata that marks it complete).

    Returns the array's path, or ``None`` when the cache folder is not writable (not an error: the
    data is in memory already, only the next run will decode again).
    """
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        arr_p = d / f"{key}.npy"

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, array, allow_pickle=False)

        atomic_write(arr_p, write)
        atomic_write_json(d / f"{key}.json", {**meta, "shape": list(array.shape)})
        return arr_p
    except OSError:
        return None
