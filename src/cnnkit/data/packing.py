"""Writing a pack (``cnnkit pack``): a dataset's splits as WebDataset-style tar shards plus an index.

The layout and why it has an offset index are described in :mod:`cnnkit.data.shards`. Everything is
written into a hidden temporary folder next to the target and renamed into place at the end, so a
reader sees the previous pack or the complete new one, never a half-written one; a killed pack leaves
only that temporary folder (``.tmp-pack-NAME-*``), never a damaged ``DIR``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import TMP_PREFIX, atomic_write_json, current_umask
from .base import DatasetSplits, FileData, ImageData
from .shards import FORMAT, INDEX, RAW_EXT, SAMPLES, SPLITS, VERSION, read_index, sha256_file

ENCODINGS = ("png", "raw")
CHUNK = 256  # samples decoded/encoded at a time: bounded memory whatever the split's size


class _HashingFile:
    """A write-only file that hashes and counts what ``tarfile`` writes through it (no second read pass)."""

    def __init__(self, path: Path) -> None:
        import hashlib

        self.fh = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.sha = hashlib.sha256()
        self.n = 0

    def write(self, b: bytes) -> int:
        self.sha.update(b)
        self.n += len(b)
        return self.fh.write(b)

    def tell(self) -> int:
        return self.n

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class PackWriter:
    """Appends samples to tar shards of ``shard_size`` samples in ``folder``; :meth:`finish` returns the index.

    Call :meth:`start_split` before each split's samples, :meth:`add` per sample.
    """

    def __init__(self, folder: Path, shard_size: int = 10_000) -> None:
        self.folder, self.shard_size = folder, shard_size
        self.splits: dict[str, dict[str, Any]] = {}
        self.arrays: dict[str, list] = {}
        self._split: str | None = None
        self._tar: tarfile.TarFile | None = None
        self._file: _HashingFile | None = None

    def start_split(self, name: str) -> None:
        self._close_shard()
        self._split = name
        self.splits[name] = {"count": 0, "class_counts": [], "shards": []}
        for k in ("shard", "key", "offset", "nbytes", "label", "ids"):
            self.arrays[f"{name}_{k}"] = []

    def _close_shard(self) -> None:
        if self._tar is None or self._file is None or self._split is None:
            return
        self._tar.close()  # writes the end-of-archive blocks through _HashingFile
        self._file.close()
        self.splits[self._split]["shards"][-1].update(bytes=self._file.n, sha256=self._file.sha.hexdigest())
        self._tar = self._file = None

    def _member(self, name: str, data: bytes) -> int:
        """Add one member; returns the byte offset of its data in the shard."""
        assert self._tar is not None
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime, ti.mode = len(data), 0, 0o644  # mtime 0: the same data packs to the same bytes
        self._tar.addfile(ti, io.BytesIO(data))
        return self._tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE

    def add(self, ext: str, data: bytes, label: int, sample_id: str) -> None:
        """One sample: its image bytes stored as ``KEY.ext``, plus ``KEY.cls`` and ``KEY.id``."""
        sp = self.splits[self._split]  # type: ignore[index]
        key = sp["count"]
        if key % self.shard_size == 0:
            self._close_shard()
            name = f"{self._split}-{len(sp['shards']):06d}.tar"
            sp["shards"].append({"file": name, "count": 0})
            self._file = _HashingFile(self.folder / name)
            self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)  # type: ignore[arg-type]  # noqa: SIM115
        k = f"{key:08d}"
        offset = self._member(f"{k}.{ext}", data)
        self._member(f"{k}.cls", str(label).encode())
        self._member(f"{k}.id", sample_id.encode())
        a = self.arrays
        for name, v in (("shard", len(sp["shards"]) - 1), ("key", key), ("offset", offset), ("nbytes", len(data)),
                        ("label", label), ("ids", sample_id)):  # fmt: skip
            a[f"{self._split}_{name}"].append(v)
        sp["count"] += 1
        sp["shards"][-1]["count"] += 1

    def finish(self, classes: list[str], image_shape: tuple[int, int, int], encoding: str,
               extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        """Close the last shard, write ``samples.npz`` and ``index.json``; return the index."""
        self._close_shard()
        arrays: dict[str, np.ndarray] = {}
        for sp in SPLITS:
            if sp not in self.splits:
                self.start_split(sp)
                self._split = None
            a = self.arrays
            ids = [s.encode() for s in a[f"{sp}_ids"]]
            arrays[f"{sp}_ids"] = np.frombuffer(b"".join(ids), dtype=np.uint8)
            arrays[f"{sp}_id_end"] = np.cumsum([len(s) for s in ids], dtype=np.int64)
            for k, dt in (("shard", np.int32), ("key", np.int64), ("offset", np.int64), ("nbytes", np.int64),
                          ("label", np.int64)):  # fmt: skip
                arrays[f"{sp}_{k}"] = np.asarray(a[f"{sp}_{k}"], dtype=dt)
            self.splits[sp]["class_counts"] = np.bincount(
                arrays[f"{sp}_label"], minlength=len(classes)
            ).tolist()
        np.savez(self.folder / SAMPLES, **arrays)
        c, h, w = image_shape
        index = {"format": FORMAT, "version": VERSION, **extra, "classes": list(classes), "image_shape": [c, h, w],
                 "encoding": encoding, "raw_shape": [h, w, c] if encoding == "raw" else None,
                 "splits": {sp: self.splits[sp] for sp in SPLITS},
                 "samples": {"file": SAMPLES, "bytes": (self.folder / SAMPLES).stat().st_size,
                             "sha256": sha256_file(self.folder / SAMPLES)}}  # fmt: skip
        atomic_write_json(self.folder / INDEX, index)
        return index


def encode_png(hwc: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc).save(buf, "PNG", compress_level=1)
    return buf.getvalue()  # level 1: several times faster to write than 6, a little larger


def _samples(split: ImageData | FileData, encoding: str, keep_files: bool):
    """``(ext, bytes, label, id)`` per sample of a split, CHUNK samples decoded at a time; skipped count last."""
    labels = split.labels.tolist()
    for start in range(0, len(split), CHUNK):
        idx = list(range(start, min(start + CHUNK, len(split))))
        if keep_files:  # the source files' own bytes: no decoding, no quality loss
            for i in idx:
                path = split.files[i]
                yield (
                    os.path.splitext(path)[1][1:].lower() or "img",
                    Path(path).read_bytes(),
                    labels[i],
                    split.ids[i],
                )
            continue
        if isinstance(split, ImageData):
            arr, failed = split.images[idx].numpy(), []
        else:
            arr, failed = split.decode(idx)
        bad = {j for j, _ in failed}
        for j, i in enumerate(idx):
            if j in bad:
                continue  # an unreadable file: left out (counted in the index)
            hwc = np.ascontiguousarray(arr[j].transpose(1, 2, 0))
            data = hwc.tobytes() if encoding == "raw" else encode_png(hwc)
            yield RAW_EXT if encoding == "raw" else "png", data, labels[i], split.ids[i]


def pack_dataset(ds: DatasetSplits, out: str | Path, *, shard_size: int = 10_000, encoding: str = "png",
                 resized: bool = False, overwrite: bool = False, extra: dict[str, Any] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Write ``ds`` as a pack in ``out`` (see the module docstring); returns the index.

    Samples of file-backed splits keep their files' own bytes with ``encoding="png"`` unless
    ``resized`` (an ``--input-size`` was asked for): then, as in-memory splits, they are decoded at
    the dataset's size and stored as PNG (or raw pixels).
    """
    if encoding not in ENCODINGS:
        raise DataError(f"unknown encoding {encoding!r}", hint="use --encoding png or --encoding raw")
    out = Path(out).expanduser()
    old = check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}pack-{out.name}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700; the pack gets a plain folder's mode
    try:
        w = PackWriter(tmp, shard_size)
        total, done = sum(len(ds.split(s)) for s in SPLITS), 0
        for sp in SPLITS:
            split = ds.split(sp)
            keep = (
                isinstance(split, FileData)
                and not hasattr(split, "shard")
                and encoding == "png"
                and not resized
            )
            w.start_split(sp)
            for i, (ext, data, label, sid) in enumerate(_samples(split, encoding, keep)):
                w.add(ext, data, label, sid)
                if progress is not None and (i + 1) % CHUNK == 0:
                    progress(done + i + 1, total)
            done += len(split)
        meta = {"source": ds.name, "created": time.strftime("%Y-%m-%d %H:%M:%S"), **(extra or {})}
        index = w.finish(ds.classes, ds.image_shape, encoding, meta)
        if progress is not None:
            progress(total, total)
        _swap_in(tmp, out, old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temporary folder, nothing of the user's
        raise
    return index


def pack_files(index: dict[str, Any]) -> list[str]:
    """The file names a pack consists of (what --overwrite may replace)."""
    return [INDEX, SAMPLES] + [
        s["file"] for sp in SPLITS for s in index["splits"].get(sp, {}).get("shards", [])
    ]


def check_target(out: Path, overwrite: bool) -> dict[str, Any] | None:
    """Refuse a target that is a file, or a non-empty folder that is not a pack (or is one, without --overwrite).

    Returns the index of the pack to replace, ``None`` when the folder is absent or empty.
    """
    if out.exists() and not out.is_dir():
        raise DataError(f"-o {str(out)!r} is a file", hint="give a folder for the shards (it is created)")
    if not out.exists() or not any(out.iterdir()):
        return None
    if not (out / INDEX).is_file():
        raise DataError(f"-o {str(out)!r} is a non-empty folder that is not a cnnkit pack: refusing to write into it",
                        hint="give a new or empty folder")  # fmt: skip
    try:
        old = read_index(out)
    except DataError as e:
        raise DataError(
            f"-o {str(out)!r} has an {INDEX} this cnnkit cannot read ({e})", hint="give a new or empty folder"
        ) from None
    if not overwrite:
        raise DataError(
            f"-o {str(out)!r} already holds a pack",
            hint="pass --overwrite to replace it, or give another folder",
        )
    ours = set(pack_files(old))
    extra = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if extra:
        raise DataError(f"-o {str(out)!r} holds a pack and other files ({', '.join(extra[:3])}): refusing to replace it",
                        hint="move those files elsewhere, or give another folder")  # fmt: skip
    return old


def _swap_in(tmp: Path, out: Path, old: dict[str, Any] | None) -> None:
    """Put the finished pack in place: an empty target is replaced, an old pack is moved aside, then removed."""
    if out.is_dir() and old is None:
        out.rmdir()  # empty (checked); rmdir refuses anything else
        os.replace(tmp, out)
        return
    if old is None:
        os.replace(tmp, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}old-{out.name}-", dir=out.parent))
    aside.rmdir()
    os.replace(out, aside)
    os.replace(tmp, out)
    for name in pack_files(old):  # only the old pack's own files
        (aside / name).unlink(missing_ok=True)
    aside.rmdir()
