"""Small file helpers: atomic writes (temp file + rename), JSON."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # temp files start with this; a resumed run removes leftovers


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Write ``path`` so readers see the old file or the complete new one, never a partial one.

    ``write`` receives a temporary path in the same folder (so the final rename is atomic on the
    same file system), the file is fsynced and then renamed over ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: Path(p).write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files a killed process left behind; return what was removed."""
    removed = []
    for p in Path(folder).glob(TMP_PREFIX + "*"):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
