"""Small file helpers: atomic writes (temp file + rename), JSON, a closed standard output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # temp files start with this; a resumed run removes leftovers
_UMASK_LOCK = threading.Lock()


def stdout_is_devnull() -> bool:
    """Whether standard output now points at /dev/null (rich does that when the reader goes away)."""
    try:
        return os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(os.devnull))
    except (OSError, ValueError, AttributeError):  # no real stdout (a notebook, pytest's capture)
        return False


def silence_stdout() -> None:
    """Point stdout at /dev/null (its reader went away), so later writes and the final flush cannot raise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (pytest's capture, a notebook)
        pass


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it, so set it back at once)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


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
            # mkstemp makes the file 0600 whatever the umask (and some writers, e.g. safetensors, make
            # their own file in its place); a plain open() gives 0666 & ~umask, so colleagues on a
            # shared server can read the report. Give the finished file the mode open() would.
            if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to fix
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
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


def unused_name(path: str | Path) -> Path:
    """``path`` if nothing is there, else the first free ``stem-2.suffix``, ``stem-3.suffix``, ...

    For default output names: a command run twice, or next to a user's file of that name, writes a
    new file instead of replacing one it did not create (an explicit ``-o`` names the file to write).
    Files written beside the output (``retrieval.html`` beside ``retrieval.png``) count as taken too.
    """
    p = Path(path)

    def taken(q: Path) -> bool:
        return q.exists() or q.is_symlink() or (q.suffix == ".png" and q.with_suffix(".html").exists())

    if not taken(p):
        return p
    n = 2
    while taken(q := p.with_name(f"{p.stem}-{n}{p.suffix}")):
        n += 1
    return q


def check_output_file(path: str | Path, option: str = "-o/--output", inputs: tuple[str | Path, ...] = ()) -> Path:
    """Check before any work that ``path`` can be written as a file; raise a one-line error if not.

    The parent folder must exist (or be creatable under an existing, writable folder), ``path`` must
    not be a folder, and it must not be one of the command's own ``inputs`` (writing a result over
    the image it was computed from loses the user's file).
    """
    from .errors import ConfigError

    p = Path(path).expanduser()
    if str(path).strip() == "":
        raise ConfigError(f"{option} is empty", hint="give a file name, e.g. -o out.png")
    if p.is_dir():
        raise ConfigError(f"{option} {str(path)!r} is a folder", hint="give a file name inside it, e.g. "
                          f"{str(p / ('out' + (p.suffix or '.png')))!r}")  # fmt: skip
    for src in inputs:
        try:
            same = p.exists() and Path(src).exists() and os.path.samefile(p, src)
        except OSError:
            same = False
        if same:
            raise ConfigError(f"{option} {str(path)!r} is also an input of this command",
                              hint="write the result to another file")  # fmt: skip
    check_output_dir(p.parent if str(p.parent) else Path("."), option)
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{option} {str(path)!r} exists and is not writable", hint="choose another file")
    return p


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Check that ``path`` is (or can be made as) a writable folder; raise a one-line error if not."""
    from .errors import ConfigError

    p = Path(path).expanduser()
    q = p
    while not q.exists():  # the nearest existing ancestor decides whether we may create the rest
        if q.parent == q:
            break
        q = q.parent
    if q.exists() and not q.is_dir():
        raise ConfigError(f"{option} {str(path)!r}: {str(q)!r} is a file, not a folder",
                          hint="choose another output location")  # fmt: skip
    if q.exists() and not os.access(q, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r}: folder {str(q)!r} is not writable",
                          hint="choose a folder you can write to")  # fmt: skip
    return p
