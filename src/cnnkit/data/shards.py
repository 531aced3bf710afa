"""``shards:DIR``: a dataset packed by ``cnnkit pack`` into WebDataset-style tar shards, streamed.

A pack folder holds, per split, tar files ``train-000000.tar``, ... in which each sample is
``KEY.png`` (or ``KEY.u8`` raw pixels, or the source file's own bytes, e.g. ``KEY.jpg``), ``KEY.cls``
(the label index) and ``KEY.id`` (the sample id), so WebDataset and ``tar`` read them as they are.
``index.json`` records the format version, classes, image shape, per-split counts and class counts,
and per shard its file, sample count, byte size and sha256; ``samples.npz`` records, per split and
sample, the shard number, the byte offset and size of the image inside it, the label and the id.

Why an offset index, and reading by offset by default rather than in sequence through a shuffle
buffer (which :mod:`cnnkit.data.shard_stream` does with ``--shuffle-buffer N``, for storage where
random reads are slow): on a local disk, an SSD or the page cache a sample is one ``pread`` at a
known offset, so a split becomes a :class:`ShardData` (a :class:`~cnnkit.data.base.FileData` whose
items are read by offset) and the existing
:class:`~cnnkit.data.loader.StreamLoader` serves it unchanged: an exact seeded permutation per epoch
(not the approximate order of a shuffle buffer), split across ranks as ``DistributedSampler`` does,
batches decoded by threads or worker processes. Memory is a few arrays of 8 bytes per sample plus the
ids; pixels are never held beyond the batches in flight. The index is written by ``pack`` (reading
600k tar headers at every start would cost seconds) and checked against the shards' sizes and
sha256 when the pack is opened: a damaged or missing shard is one clear error that names it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .base import FileData
from .images import BadImage, _pil_to_array, _quiet_pil, _reason, default_threads
from .registry import RawDataset, register_prefix

FORMAT = "cnnkit-shards"
VERSION = 1
INDEX = "index.json"
SAMPLES = "samples.npz"
SPLITS = ("train", "val", "test")
RAW_EXT = "u8"  # raw uint8 pixels, H x W x C, shape in index.json


def _repack_hint(root: str) -> str:
    return f"re-create it with `cnnkit pack DATA -o {root} --overwrite`"


# --------------------------------------------------------------------------- reading samples by offset
_FDS: dict[str, int] = {}  # open shard files of this process, one fd per shard
_FDS_LOCK = threading.Lock()


def _fd(path: str) -> int:
    # pread takes the offset with each call, so threads (and forked workers, which inherit the fds)
    # can share one descriptor: no seek state to race on.
    with _FDS_LOCK:
        fd = _FDS.get(path)
        if fd is None:
            fd = _FDS[path] = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        return fd


def _read(path: str, offset: int, size: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(_fd(path), size, offset)
    with open(path, "rb") as fh:  # Windows has no pread
        fh.seek(offset)
        return fh.read(size)


def decode_bytes(
    buf: bytes, raw_shape: tuple[int, int, int] | None, channels: int, size: tuple[int, int]
) -> np.ndarray:
    """One stored sample as uint8 ``C x H x W``: raw pixels (``raw_shape`` H, W, C) or an encoded image."""
    from PIL import Image, ImageOps

    if raw_shape is not None:
        h, w, c = raw_shape
        if len(buf) != h * w * c:
            raise BadImage(f"raw sample has {len(buf)} bytes, expected {h * w * c}")
        a = np.frombuffer(buf, dtype=np.uint8).reshape(h, w, c)
        if c == channels and (h, w) == tuple(size):
            return a.transpose(2, 0, 1)
        return _pil_to_array(Image.fromarray(a[:, :, 0] if c == 1 else a), channels, size).transpose(2, 0, 1)
    try:
        with Image.open(io.BytesIO(buf)) as im:
            im.load()
            if im.getexif().get(0x0112, 1) != 1:
                ImageOps.exif_transpose(im, in_place=True)
            return _pil_to_array(im, channels, size).transpose(2, 0, 1)
    except Exception as e:  # PIL raises many types for damaged data
        raise BadImage(_reason(e, "")) from None


class _MemberNames(Sequence):
    """``files`` of a :class:`ShardData`: ``DIR/train-000000.tar#00000012`` made on demand (for messages)."""

    def __init__(self, data: ShardData) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data.offset)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        d = self.data
        return f"{d.shard_paths[int(d.shard[i])]}#{int(d.key[i]):08d}"


@dataclass(repr=False, eq=False)
class ShardData(FileData):
    """One split of a pack: samples read from tar shards by offset, decoded batch by batch.

    ``shard``, ``key``, ``offset``, ``nbytes`` are NumPy arrays, one entry per sample: the shard
    number (into ``shard_paths``), the sample's key in it, and where its image bytes are.
    ``raw_shape`` is ``(H, W, C)`` for raw ``.u8`` samples, ``None`` for encoded images.
    ``shuffle_buffer`` > 0 makes a shuffled loader read the shards in sequence through a shuffle
    buffer (:mod:`cnnkit.data.shard_stream`) instead of by offset in an exact permutation.
    """

    shard_paths: list[str] = field(default_factory=list)
    shard: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    key: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    offset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    nbytes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    raw_shape: tuple[int, int, int] | None = None
    shuffle_buffer: int = 0  # > 0: a shuffled loader reads shards in sequence through a buffer of this many

    def __post_init__(self) -> None:
        self.files = _MemberNames(self)  # always derived from the arrays (also after dataclasses.replace)
        super().__post_init__()

    def subset(self, index: torch.Tensor | list[int]) -> ShardData:
        idx = torch.as_tensor(index, dtype=torch.long).numpy()
        return ShardData([], self.labels[torch.from_numpy(idx)], [self.ids[i] for i in idx.tolist()], self.channels,
                         self.size, list(self.shard_paths), self.shard[idx], self.key[idx], self.offset[idx],
                         self.nbytes[idx], self.raw_shape, self.shuffle_buffer)  # fmt: skip

    def decode(
        self,
        indices: Sequence[int] | None = None,
        threads: int | None = None,
        executor: Executor | None = None,
    ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Read and decode samples (all by default) into uint8 ``N x C x H x W``; failures as ``(position, reason)``."""
        idx = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=np.int64)
        h, w = self.size
        out = np.zeros((len(idx), self.channels, h, w), dtype=np.uint8)
        paths, shard, off, nb = self.shard_paths, self.shard[idx], self.offset[idx], self.nbytes[idx]

        def work(rng: range) -> list[tuple[int, str]]:
            bad = []
            for j in rng:
                try:
                    buf = _read(paths[shard[j]], int(off[j]), int(nb[j]))
                    out[j] = decode_bytes(buf, self.raw_shape, self.channels, self.size)
                except BadImage as e:
                    bad.append((j, e.reason))
                except OSError as e:
                    raise DataError(f"cannot read shard {paths[shard[j]]!r}: {e.strerror or e}",
                                    hint="is the pack folder still there?") from None  # fmt: skip
            return bad

        n = len(idx)
        chunks = [range(i, min(i + 64, n)) for i in range(0, n, 64)]
        threads = threads or default_threads()
        failed: list[tuple[int, str]] = []
        with _quiet_pil():
            if executor is not None and len(chunks) > 1:
                for bad in executor.map(work, chunks):
                    failed += bad
            elif threads > 1 and len(chunks) > 1:
                with ThreadPoolExecutor(threads) as ex:
                    for bad in ex.map(work, chunks):
                        failed += bad
            else:
                for c in chunks:
                    failed += work(c)
        return out, sorted(failed)

    def __getstate__(self) -> dict:  # the lazy ``files`` view refers to self: rebuilt on unpickling
        return {k: v for k, v in self.__dict__.items() if k != "files"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.files = _MemberNames(self)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return f"ShardData({len(self)} samples in {len(self.shard_paths)} shards, decoded to {c}x{h}x{w} batch by batch)"


# --------------------------------------------------------------------------- opening a pack
def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while b := fh.read(chunk):
            h.update(b)
    return h.hexdigest()


def read_index(root: str | Path) -> dict[str, Any]:
    """``DIR/index.json`` of a pack, checked to be one (a clear error for anything else)."""
    root = Path(root).expanduser()
    r = str(root)
    if not root.is_dir():
        raise DataError(f"shards folder {r!r} does not exist" if not root.exists() else f"{r!r} is not a folder",
                        hint=f"create it with `cnnkit pack DATA -o {r}`")  # fmt: skip
    f = root / INDEX
    if not f.is_file():
        raise DataError(
            f"{r!r} is not a cnnkit pack: it has no {INDEX}", hint=f"create it with `cnnkit pack DATA -o {r}`"
        )
    try:
        index = json.loads(f.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{f} is damaged: {e}", hint=_repack_hint(r)) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{f} is not a cnnkit pack index", hint=f"create one with `cnnkit pack DATA -o {r}`")
    if index.get("version") != VERSION:
        raise DataError(f"{f} has pack format version {index.get('version')}; this cnnkit reads version {VERSION}",
                        hint=_repack_hint(r))  # fmt: skip
    return index


def verify_pack(root: str | Path, index: dict[str, Any], threads: int | None = None) -> None:
    """Check every file the index lists: present, of its recorded size and sha256 (hashed in parallel)."""
    root = Path(root).expanduser()
    files = [(root / SAMPLES, index["samples"])]
    files += [(root / s["file"], s) for sp in SPLITS for s in index["splits"][sp]["shards"]]
    for path, rec in files:
        if not path.is_file():
            raise DataError(
                f"shard {str(path)!r} is missing (listed in {root / INDEX})", hint=_repack_hint(str(root))
            )
        if path.stat().st_size != rec["bytes"]:
            raise DataError(f"shard {str(path)!r} is damaged: {path.stat().st_size:,} bytes, the index says "
                            f"{rec['bytes']:,}", hint=_repack_hint(str(root)))  # fmt: skip
    with ThreadPoolExecutor(threads or default_threads()) as ex:  # hashlib releases the GIL
        digests = list(ex.map(lambda pr: sha256_file(pr[0]), files))
    for (path, rec), digest in zip(files, digests, strict=True):
        if digest != rec["sha256"]:
            raise DataError(f"shard {str(path)!r} is damaged: its sha256 differs from the one in {INDEX}",
                            hint=_repack_hint(str(root)))  # fmt: skip


def open_pack(root: str | Path, verify: bool = True) -> tuple[dict[str, Any], dict[str, ShardData]]:
    """The index and one :class:`ShardData` per split of the pack in ``root`` (checked unless ``verify=False``)."""
    root = Path(root).expanduser()
    index = read_index(root)
    if verify:
        verify_pack(root, index)
    c, h, w = index["image_shape"]
    raw = tuple(index["raw_shape"]) if index.get("encoding") == "raw" else None
    with np.load(root / SAMPLES) as z:
        arrays = {k: z[k] for k in z.files}
    splits = {}
    for sp in SPLITS:
        paths = [str((root / s["file"]).resolve()) for s in index["splits"][sp]["shards"]]
        blob, ends = arrays[f"{sp}_ids"].tobytes(), arrays[f"{sp}_id_end"]
        starts = np.concatenate([[0], ends[:-1]]) if len(ends) else ends
        ids = [blob[a:b].decode() for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]
        splits[sp] = ShardData([], torch.from_numpy(arrays[f"{sp}_label"].astype(np.int64)), ids, c, (h, w), paths,
                               arrays[f"{sp}_shard"], arrays[f"{sp}_key"], arrays[f"{sp}_offset"],
                               arrays[f"{sp}_nbytes"], raw)  # fmt: skip
    return index, splits


@register_prefix("shards")
def load_shards_source(arg: str, shuffle_buffer: int = 0, memory_budget_mb: float | None = None,
                       **_: Any) -> RawDataset:  # fmt: skip
    """``shards:DIR``: the pack's own train/val/test splits (never re-split), streamed.

    ``shuffle_buffer`` > 0 selects the sequential reader for shuffled epochs (see
    :mod:`cnnkit.data.shard_stream`). ``memory_budget_mb`` does not apply (shards always stream); it
    is recorded for ``cnnkit inspect``, which decodes a pack that fits it. ``**_``: the registry's other
    options (size and channels are applied later, when each batch is decoded).
    """
    index, splits = open_pack(arg)
    for sp in splits.values():
        sp.shuffle_buffer = int(shuffle_buffer)
    info = {"source": f"shards {arg}", "files": arg, "storage": "streaming",
            "split": f"as packed ({index.get('split', {}).get('method', 'recorded in index.json')})",
            "messages": [f"streaming {sum(len(s) for s in splits.values()):,} samples from "
                         f"{sum(len(s.shard_paths) for s in splits.values())} shards in {arg} (checksums verified)"]}  # fmt: skip
    if memory_budget_mb is not None:
        info["memory_budget_mb"] = memory_budget_mb
    return RawDataset(list(index["classes"]), splits, info)
