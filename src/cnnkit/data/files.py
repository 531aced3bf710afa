"""The user's own images: ``folder:PATH`` (one subfolder per class) and ``csv:FILE`` (``path,label``).

Real folders are messy, so scanning is forgiving and says what it did: hidden files and system
files (``.DS_Store``, ``Thumbs.db``) are ignored; non-image files, empty files and images that do not
decode (truncated, corrupt) are *skipped* and listed in ``info["skipped"]`` (training writes the list
into the run folder); ``strict=True`` turns the first of them into an error instead. Any mode (grey,
RGB, RGBA, palette, CMYK, 16-bit) and any size is accepted: each image is converted to the model's
channels and input size, with its EXIF orientation applied.

Where the decoded images go depends on their size at the model's input:

* within ``memory_budget_mb``: decoded once, in parallel threads, into one uint8 tensor
  (:class:`ImageData`) and cached on disk (:mod:`cnnkit.data.cache`): the next run with the same
  files, size and channels loads the cache instead of decoding ("cache hit").
* beyond it: a :class:`FileData` split that the training loader decodes batch by batch
  (:class:`~cnnkit.data.loader.StreamLoader`); files are only checked by their headers up front.

Image ids are the paths relative to ``PATH`` (or as written in the CSV), so a run's ``split.json``
lists exactly which files were used for training, validation and testing.
"""

from __future__ import annotations

import csv
import os
import stat
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from . import cache as _cache
from .base import FileData, ImageData
from .images import GRAY_MODES, SYSTEM_FILES, decode_files, default_threads, is_image_name, probe_files
from .registry import RawDataset, register_prefix

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DEFAULT_MEMORY_BUDGET_MB = 4096


@dataclass
class FileRecord:
    """One file found by a scan: where it is, its id and label, and why it is skipped (if it is)."""

    path: str  # as shown to the user (the given folder joined with the id)
    id: str  # relative to the dataset's folder (or as written in the CSV)
    label: int
    split: str = "all"  # all | train | val | test
    size: int = 0
    mtime_ns: int = 0
    reason: str | None = None


def _ignored(name: str) -> bool:
    return name.startswith(".") or name.lower() in SYSTEM_FILES


def _stat_record(path: str, rel: str, label: int, split: str, st: os.stat_result | None = None) -> FileRecord:
    r = FileRecord(path, rel, label, split)
    try:
        st = st or os.stat(path)
    except OSError:
        r.reason = "file not found"
        return r
    except ValueError:  # a NUL byte in a path written in a CSV
        r.reason = "not a valid file path"
        return r
    r.size, r.mtime_ns = st.st_size, st.st_mtime_ns
    if not stat.S_ISREG(st.st_mode):
        r.reason = "not a file"
    elif not is_image_name(path):
        r.reason = f"not an image file (extension {os.path.splitext(path)[1] or 'none'!r})"
    elif st.st_size == 0:
        r.reason = "empty file (0 bytes)"
    return r


def _walk(folder: str) -> list[tuple[str, os.stat_result]]:
    """Visible files under ``folder`` (recursively) with their stat, sorted by path.

    Hidden and system entries are skipped. Plain strings and ``os.scandir`` (not pathlib): a scan of
    100,000 files should take a fraction of a second.
    """
    out: list[tuple[str, os.stat_result]] = []
    stack = [folder]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if _ignored(e.name):
                    continue
                if e.is_dir():
                    stack.append(e.path)
                else:
                    try:
                        out.append((e.path, e.stat()))
                    except OSError:  # a dangling link
                        out.append((e.path, None))
    out.sort(key=lambda t: t[0])
    return out


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not _ignored(e.name))


def scan_folder(path: str) -> tuple[list[str], list[FileRecord], dict[str, Any]]:
    """Classes (sorted subfolder names), one record per file, and notes on the layout."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"folder {path!r} does not exist", hint="folder:PATH needs a folder with one subfolder per class")
    if not root.is_dir():
        raise DataError(f"{path!r} is not a folder", hint="use csv:FILE for a CSV of path,label rows")
    subs = _subdirs(root)
    splits = {SPLIT_NAMES[s.lower()]: s for s in subs if s.lower() in SPLIT_NAMES}
    presplit = "train" in splits and bool(_subdirs(root / splits["train"]))
    info: dict[str, Any] = {"layout": "train/val/test subfolders" if presplit else "one subfolder per class"}
    if presplit:
        classes = _subdirs(root / splits["train"])
        parts = [(name, root / folder) for name, folder in splits.items()]
        extra = [s for s in subs if s not in splits.values()]
        if extra:
            info["ignored_folders"] = extra
    else:
        classes = subs
        parts = [("all", root)]
    if not classes:
        raise DataError(
            f"folder {path!r} has no class subfolders",
            hint=f"put each class's images in its own subfolder, e.g. {path}/cat/1.jpg and {path}/dog/2.jpg",
        )
    index = {c: i for i, c in enumerate(classes)}
    records: list[FileRecord] = []
    for split, folder in parts:
        for cls in _subdirs(folder):
            if cls not in index:
                raise DataError(
                    f"class folder {str(folder / cls)!r} is not a class of the training set",
                    hint=f"the classes are the subfolders of {str(folder.parent / splits['train'])!r}: "
                    + ", ".join(classes[:20]),
                )
            files = _walk(os.path.join(folder, cls))
            if not files:
                raise DataError(f"class folder {str(folder / cls)!r} is empty", hint="add images to it or remove it")
            cut = len(str(root)) + 1
            for f, st in files:
                rel = f[cut:].replace(os.sep, "/")
                records.append(_stat_record(f, rel, index[cls], split, st))
    loose = [e.name for e in os.scandir(root) if e.is_file() and not _ignored(e.name)]
    if loose:
        info["ignored_files"] = sorted(loose)  # files next to the class folders belong to no class
    records.sort(key=lambda r: r.id)
    return classes, records, info


def _sort_classes(names: set[str]) -> list[str]:
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def scan_csv(path: str) -> tuple[list[str], list[FileRecord], dict[str, Any]]:
    """Classes and records of a CSV with ``path,label`` rows (header optional, optional ``split`` column)."""
    f = Path(path).expanduser()
    if f.is_dir():
        raise DataError(f"CSV file {path!r} is a folder", hint=f"use folder:{path} for a folder of class subfolders")
    if not f.is_file():
        raise DataError(f"CSV file {path!r} does not exist", hint="csv:FILE needs a file with path,label rows")
    try:
        with open(f, newline="", encoding="utf-8-sig") as fh:
            rows = [(i + 1, r) for i, r in enumerate(csv.reader(fh)) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read CSV file {path!r}: {e}", hint="save it as UTF-8 text with path,label rows") from None
    if not rows:
        raise DataError(f"CSV file {path!r} is empty", hint="write one path,label row per image")
    head = [c.strip().lower() for c in rows[0][1]]
    cols = {"path": 0, "label": 1, "split": None}
    if any(h in ("path", "file", "filename", "image", "label", "class") for h in head):
        rows = rows[1:]
        names = {"path": ("path", "file", "filename", "image", "filepath"), "label": ("label", "class", "target"),
                 "split": ("split", "subset")}  # fmt: skip
        for key, options in names.items():
            found = [i for i, h in enumerate(head) if h in options]
            if found:
                cols[key] = found[0]
            elif key != "split":
                raise DataError(f"CSV file {path!r} has no {key!r} column (header: {','.join(head)})",
                                hint="name the columns path,label")  # fmt: skip
    base = f.parent
    entries: list[tuple[int, str, str, str]] = []
    need = max(c for c in cols.values() if c is not None)
    for line, r in rows:
        if len(r) <= need or not r[cols["path"]].strip() or not r[cols["label"]].strip():
            raise DataError(f"{path}, line {line}: expected path,label, got {','.join(r)!r}",
                            hint="every row needs a file path and a label")  # fmt: skip
        split = "all"
        if cols["split"] is not None:
            s = r[cols["split"]].strip().lower()
            if s not in SPLIT_NAMES:
                raise DataError(f"{path}, line {line}: unknown split {s!r}", hint="use train, val or test")
            split = SPLIT_NAMES[s]
        entries.append((line, r[cols["path"]].strip().replace("\\", "/"), r[cols["label"]].strip(), split))
    if cols["split"] is not None and not any(e[3] == "train" for e in entries):
        raise DataError(f"CSV file {path!r} has a split column but no train rows")
    classes = _sort_classes({e[2] for e in entries})
    index = {c: i for i, c in enumerate(classes)}
    records = []
    for _, p, label, split in entries:
        full = os.path.expanduser(p) if os.path.isabs(p) else os.path.join(base, p)
        records.append(_stat_record(full, p, index[label], split))
    return classes, records, {"layout": "CSV rows" + (" with a split column" if cols["split"] is not None else "")}


# --------------------------------------------------------------------------- from records to splits
def _bad_file_error(bad: list[FileRecord], what: str) -> DataError:
    more = f" ({len(bad) - 1} more bad files found so far)" if len(bad) > 1 else ""
    return DataError(
        f"bad file {bad[0].path!r}: {bad[0].reason}{more}",
        hint=f"fix or remove it, or run without --strict to skip bad files (they are then listed in {what})",
    )


def _guess_size(records: list[FileRecord], threads: int, location: str = "") -> tuple[int, int]:
    """A size for data loaded without a model: the size most files share, else the median height and width.

    Looks at up to 500 evenly spaced files' headers.
    """
    step = max(1, len(records) // 500)
    sample = records[::step]
    res, failed = probe_files([r.path for r in sample], threads)
    sizes = [s for _, s in filter(None, res)]
    if not sizes:
        where = f" in {location!r}" if location else ""
        example = f"e.g. {sample[failed[0][0]].path!r}: {failed[0][1]}" if failed else "check the files"
        raise DataError(f"none of the {len(sample)} sampled images{where} could be read (no readable images)",
                        hint=example)  # fmt: skip
    size, count = Counter(sizes).most_common(1)[0]
    if count * 2 >= len(sizes):
        return size
    h, w = np.median(np.array(sizes), axis=0)
    return int(h), int(w)


def load_records(
    classes: list[str],
    records: list[FileRecord],
    *,
    source: str,
    location: str,
    input_size: tuple[int, int] | None = None,
    channels: int | None = None,
    strict: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    cache: bool = True,
    threads: int | None = None,
    class_folder: str | None = None,
) -> RawDataset:
    """Decode (or prepare to stream) scanned files: skipped files noted, empty classes refused."""
    threads = threads or default_threads()
    bad = [r for r in records if r.reason]
    if strict and bad:
        raise _bad_file_error(bad, "skipped_files.txt")
    good = [r for r in records if not r.reason]
    messages: list[str] = []

    def check_classes(kept: list[FileRecord]) -> None:
        have = set(r.label for r in kept)
        for i, c in enumerate(classes):
            if i not in have:
                where = f"class folder {os.path.join(class_folder, c)!r}" if class_folder else f"class {c!r} of {source}"
                lost = [r for r in records if r.label == i]
                hint = f"all {len(lost)} of its files were skipped, e.g. {lost[0].path!r}: {lost[0].reason}" if lost else None
                raise DataError(f"{where} has no readable images", hint=hint)

    check_classes(good)
    size = tuple(input_size) if input_size is not None else _guess_size(good, threads, location)
    need_mb = len(good) * (channels or 3) * size[0] * size[1] / 2**20
    info: dict[str, Any] = {"source": source, "files": location, "image_size": list(size)}
    if need_mb <= memory_budget_mb:
        imgs, kept, failed, ch = _decode_cached(good, size, channels, cache, threads, messages, info)
    else:
        paths = [r.path for r in good]
        t0 = time.perf_counter()
        res, failed_idx = probe_files(paths, threads)
        failed = [(good[i], reason) for i, reason in failed_idx]
        kept = [r for r, m in zip(good, res, strict=True) if m is not None]
        ch = channels or (1 if all(m[0] in GRAY_MODES for m in filter(None, res)) else 3)
        imgs = None
        info["storage"] = "streaming"
        messages.append(
            f"streaming {len(kept):,} images from disk: decoded at {size[1]}x{size[0]} they need {need_mb:,.0f} MB, "
            f"more than the memory budget of {memory_budget_mb:,.0f} MB (--memory-budget-mb); "
            f"headers checked in {time.perf_counter() - t0:.1f} s"
        )
    for r, reason in failed:
        r.reason = reason
    bad = sorted(bad + [r for r, _ in failed], key=lambda r: r.id)
    if strict and failed:
        raise _bad_file_error(sorted((r for r, _ in failed), key=lambda r: r.id), "skipped_files.txt")
    check_classes(kept)
    info["skipped"] = [{"path": r.path, "reason": r.reason} for r in bad]
    info["channels"] = ch
    warnings = []
    if bad:
        shown = "; ".join(f"{r.path} ({r.reason})" for r in bad[:3])
        warnings.append(f"skipped {len(bad)} bad file{'s' * (len(bad) > 1)}: {shown}" + (" ..." if len(bad) > 3 else ""))
    info["messages"], info["warnings"] = messages, warnings

    labels = torch.tensor([r.label for r in kept], dtype=torch.long)
    ids = [r.id for r in kept]
    if imgs is not None:
        full: ImageData | FileData = ImageData(torch.from_numpy(imgs), labels, ids)
    else:
        full = FileData([os.path.abspath(r.path) for r in kept], labels, ids, ch, size)
    split_of = np.array([r.split for r in kept])
    present = [s for s in ("all", "train", "val", "test") if (split_of == s).any()]
    if len(present) == 1:  # one pool: no copy
        return RawDataset(classes, {present[0]: full}, info)
    return RawDataset(classes, {s: full.subset(np.flatnonzero(split_of == s).tolist()) for s in present}, info)


def _decode_cached(
    good: list[FileRecord],
    size: tuple[int, int],
    channels: int | None,
    use_cache: bool,
    threads: int,
    messages: list[str],
    info: dict[str, Any],
) -> tuple[np.ndarray, list[FileRecord], list[tuple[FileRecord, str]], int]:
    """Decoded images of ``good`` (from the cache when possible): array, kept records, failures, channels."""
    info["storage"] = "memory"
    key = _cache.cache_key(
        ((os.path.abspath(r.path), r.size, r.mtime_ns, r.label, r.split) for r in good),
        size=list(size), channels=channels,
    )  # fmt: skip
    t0 = time.perf_counter()
    hit = _cache.load_entry(key) if use_cache else None
    if hit is not None:
        arr, meta = hit
        failed = [(good[i], reason) for i, reason in meta["failed"]]
        bad_idx = {i for i, _ in meta["failed"]}
        kept = [r for i, r in enumerate(good) if i not in bad_idx]
        load_s = time.perf_counter() - t0
        info["cache"] = {"hit": True, "path": str(_cache.cache_dir() / f"{key}.npy"), "load_seconds": round(load_s, 3),
                         "decode_seconds": meta["decode_seconds"]}  # fmt: skip
        messages.append(
            f"cache hit: {len(kept):,} decoded images loaded in {load_s:.2f} s from {info['cache']['path']} "
            f"(decoding them took {meta['decode_seconds']:.1f} s)"
        )
        return arr, kept, failed, int(arr.shape[1])
    arr, failed_idx = decode_files([r.path for r in good], channels, size, threads=threads)
    bad_idx = {i for i, _ in failed_idx}
    if bad_idx:
        keep = np.array([i not in bad_idx for i in range(len(good))])
        arr = arr[keep]
    kept = [r for i, r in enumerate(good) if i not in bad_idx]
    decode_s = time.perf_counter() - t0
    where = None
    if use_cache:
        where = _cache.save_entry(key, arr, {"failed": failed_idx, "decode_seconds": round(decode_s, 3),
                                             "files": len(good), "created": time.strftime("%Y-%m-%d %H:%M:%S")})  # fmt: skip
    info["cache"] = {"hit": False, "path": str(where) if where else None, "decode_seconds": round(decode_s, 3)}
    messages.append(
        f"decoded {len(kept):,} images at {size[1]}x{size[0]} in {decode_s:.1f} s ({threads} threads)"
        + (f"; cached in {where}" if where else "")
    )
    return arr, kept, [(good[i], reason) for i, reason in failed_idx], int(arr.shape[1])


def _as_size(input_size: Any) -> tuple[int, int] | None:
    if input_size is None:
        return None
    if isinstance(input_size, int):
        return (input_size, input_size)
    return (int(input_size[0]), int(input_size[1]))


def _load_scanned(
    scanned: tuple[list[str], list[FileRecord], dict[str, Any]], source: str, location: Path, input_size: Any = None,
    class_folder: str | None = None, *, channels: int | None = None, strict: bool = False,
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB, cache: bool = True, threads: int | None = None, **_: Any,
) -> RawDataset:  # fmt: skip
    """:func:`load_records` for what a scan found, with the scan's notes (layout, ...) in the dataset's info.

    ``**_``: the options the registry passes to every source that do not apply to files (``seed``).
    """
    classes, records, notes = scanned
    raw = load_records(
        classes, records, source=source, location=str(location), input_size=_as_size(input_size), channels=channels,
        strict=strict, memory_budget_mb=memory_budget_mb, cache=cache, threads=threads, class_folder=class_folder,
    )  # fmt: skip
    raw.info.update(notes)
    return raw


@register_prefix("folder")
def load_folder_source(arg: str, input_size: Any = None, **options: Any) -> RawDataset:
    """``folder:PATH``: class-per-subfolder images, or ``train/``, ``val/``, ``test/`` folders of them."""
    scanned = scan_folder(arg)
    by_class = arg if scanned[2]["layout"] != "train/val/test subfolders" else None
    return _load_scanned(scanned, f"image folder {arg}", Path(arg).expanduser(), input_size, by_class, **options)


@register_prefix("csv")
def load_csv_source(arg: str, input_size: Any = None, **options: Any) -> RawDataset:
    """``csv:FILE``: ``path,label`` rows; relative paths are resolved against the CSV's folder."""
    return _load_scanned(scan_csv(arg), f"CSV file {arg}", Path(arg).expanduser().parent, input_size, **options)


def peek_side(data: str, sample: int = 64) -> int | None:
    """The longer side most images of a ``folder:``/``csv:`` spec share (from up to ``sample`` file headers).

    ``None`` for other specs or when the files cannot be read: loading them reports that properly. Used
    to choose the input size before decoding (8-32 px images are not upsampled to an ImageNet 224).
    """
    prefix, _, arg = data.partition(":")
    try:
        if prefix == "folder":
            records = scan_folder(arg)[1]
        elif prefix == "csv":
            records = scan_csv(arg)[1]
        else:
            return None
        step = max(1, len(records) // sample)
        res, _ = probe_files([r.path for r in records[::step][:sample]], default_threads())
    except (DataError, OSError):
        return None
    sides = [max(s) for _, s in filter(None, res)]
    return Counter(sides).most_common(1)[0][0] if sides else None
